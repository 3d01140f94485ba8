"""Empty-state hints on the admin's lists: when a list has no rows at all (not merely none that
match its filters or search), one line says what belongs there and links to how the first one
is made ("No deployments yet: add one or import config.yaml").

A ModelAdmin mixes in EmptyStateHintMixin and sets `empty_hint` (and `empty_hint_help`, a
sentence after it); `empty_hint_links` gives the links the staff user may follow. The line is
drawn by templates/admin/change_list.html, for every list.
"""

from __future__ import annotations

from django.urls import reverse


class EmptyStateHintMixin:
    empty_hint = ""  # "No keys yet": what the list holds, without a full stop
    empty_hint_help = ""  # one sentence more: where the rows come from

    def empty_hint_links(self, request) -> list[tuple[str, str]]:
        """(label, url) pairs, lower case, joined with "or": by default the add page, when the user may add."""
        if not self.has_add_permission(request):
            return []
        opts = self.model._meta
        return [("add one", reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)  # a redirect (an action, a bulk edit) has none
        changelist = (context or {}).get("cl")
        # result_count first: a list with rows costs no second query; the unfiltered (but
        # organization-scoped) queryset tells an empty list from a filter that matches nothing.
        if self.empty_hint and changelist is not None and changelist.result_count == 0 \
                and not changelist.root_queryset.exists():
            context["empty_hint"] = {"text": self.empty_hint, "help": self.empty_hint_help,
                                     "links": self.empty_hint_links(request)}
        return response
