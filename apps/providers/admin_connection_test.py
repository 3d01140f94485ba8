"""The admin's "Test connection" for a model deployment.

A button on the change page POSTs to `<id>/test-connection/`, which makes one cheap call to the
deployment (apps.routing.services.deployment_connection_test: what its health probe sends) and
shows the answer or the error as a message on the change page. "Save and test connection" on the
add and change forms saves, then does the same.

The deployment is looked up through the admin's organization-scoped queryset, and view permission
is enough (the call changes nothing); a POST is required, since it costs a provider call.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from apps.routing.services import deployment_connection_test

# The submit button's name (templates/admin/providers/modeldeployment/submit_line.html).
SAVE_AND_TEST = "_saveandtest"


class ConnectionTestAdminMixin:
    def get_urls(self):
        opts = self.model._meta
        test = path(
            "<path:object_id>/test-connection/",
            self.admin_site.admin_view(self.test_connection_view),
            name=f"{opts.app_label}_{opts.model_name}_test_connection",
        )
        return [test, *super().get_urls()]

    def _change_url(self, obj) -> str:
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)],
                       current_app=self.admin_site.name)

    def test_connection_view(self, request, object_id: str):
        if request.method != "POST":  # a link or a prefetch must not cost a provider call
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:  # not there, or another organization's: the scoped queryset hides it
            raise Http404(f"No {self.model._meta.verbose_name} with id {object_id!r}.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        self.connection_test_message(request, obj)
        return HttpResponseRedirect(self._change_url(obj))

    def connection_test_message(self, request, obj) -> None:
        result = deployment_connection_test(deployment=obj)
        if result.status == "ok":
            messages.success(request, f"Test connection: OK in {result.latency_ms} ms. The model answered: "
                                      f"{result.reply}")
        elif result.status == "skipped":
            messages.warning(request, f"Test connection: {result.error}")
        else:
            status = f"HTTP {result.error_status}, " if result.error_status else ""
            after = f"after {result.latency_ms} ms" if result.latency_ms is not None else "before any call"
            messages.error(request, f"Test connection failed ({status}{after}): {result.error}")

    # "Save and test connection": saved as "Save and continue editing" would, then tested once the
    # save's transaction has committed (changeform_view), never while it holds the database.

    def response_add(self, request, obj, post_url_continue=None):
        return self._then_test(request, obj, super().response_add(request, obj, post_url_continue))

    def response_change(self, request, obj):
        return self._then_test(request, obj, super().response_change(request, obj))

    def _then_test(self, request, obj, response):
        if SAVE_AND_TEST not in request.POST or not isinstance(response, HttpResponseRedirect):
            return response  # a popup answers with a page, not a redirect: no test there
        request._gateway_test_after_save = obj
        return HttpResponseRedirect(self._change_url(obj))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        response = super().changeform_view(request, object_id, form_url, extra_context)
        obj = getattr(request, "_gateway_test_after_save", None)
        if obj is not None:
            self.connection_test_message(request, obj)
        return response
