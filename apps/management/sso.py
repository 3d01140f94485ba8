"""Single sign-on for the admin (OpenID Connect): the issuer's discovery, and who a signed-in
person is here, from the claims their identity provider vouches for.

The login flow itself is mozilla-django-oidc's (apps.management.admin_sso). The operator
configures the issuer, the client and GATEWAY_SSO_ROLES, which maps values of one claim (groups
or roles) to rights: proxy admin (a superuser), admin of an organization (staff with an admin
OrganizationMembership there) or its viewer (staff with a non-admin membership). Those rights are
set again at every sign-in, so what the identity provider takes away is taken away here too.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.teams.models import Organization, OrganizationMembership
from apps.teams.services import (
    organization_member_add,
    organization_member_remove,
    organization_member_role_set,
    user_create,
)

logger = logging.getLogger(__name__)

# The discovery document is read again after this long (issuers move endpoints rarely; their
# signing keys are read at each sign-in, so a key rotation needs no wait).
DISCOVERY_TTL = 3600.0


class SsoUnavailable(Exception):
    """The issuer's discovery document could not be had or is not one."""


class SsoRefused(Exception):
    """The claims give no right to sign in; the message is shown on the login page."""


@dataclass(frozen=True)
class SsoProvider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None  # optional in the spec: the ID token's claims suffice then


@dataclass(frozen=True)
class SsoRoles:
    proxy_admin: bool = False
    organizations: dict[str, str] = field(default_factory=dict)  # organization name → membership role

    @property
    def granted(self) -> bool:
        return self.proxy_admin or bool(self.organizations)


def sso_enabled() -> bool:
    return bool(settings.GATEWAY_SSO_ISSUER)


_providers: dict[str, tuple[float, SsoProvider]] = {}
_providers_lock = threading.Lock()


def sso_provider_get() -> SsoProvider:
    """The configured issuer's endpoints, from its /.well-known/openid-configuration: fetched on
    first use and kept DISCOVERY_TTL seconds (a failure is not kept: the next sign-in tries again)."""
    issuer = settings.GATEWAY_SSO_ISSUER
    with _providers_lock:
        cached = _providers.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        provider = _provider_discover(issuer)
        _providers[issuer] = (time.monotonic(), provider)
        return provider


def sso_provider_cache_clear() -> None:
    with _providers_lock:
        _providers.clear()


def _provider_discover(issuer: str) -> SsoProvider:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT,
                                verify=getattr(settings, "OIDC_VERIFY_SSL", True))
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("sso: discovery at %s failed: %s", url, exc)
        raise SsoUnavailable("The identity provider cannot be reached; try again later.") from exc
    # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was fetched for.
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        named = document.get("issuer") if isinstance(document, dict) else None
        logger.warning("sso: %s names another issuer: %r", url, named)
        raise SsoUnavailable("The identity provider's configuration does not match GATEWAY_SSO_ISSUER.")
    required = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    missing = [name for name in required if not document.get(name)]
    if missing:
        raise SsoUnavailable(f"The identity provider's configuration lacks {', '.join(missing)}.")
    return SsoProvider(issuer=document["issuer"], authorization_endpoint=document["authorization_endpoint"],
                       token_endpoint=document["token_endpoint"], jwks_uri=document["jwks_uri"],
                       userinfo_endpoint=document.get("userinfo_endpoint") or None)


def _claim_values(claims: dict, name: str) -> set[str]:
    """The values of a claim: a list or a single string; a dotted name reaches into objects
    (Keycloak's realm_access.roles) unless a claim has that very name (Auth0's URL-like names)."""
    value = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def sso_roles_from_claims(*, claims: dict, mapping: dict) -> SsoRoles:
    """The rights GATEWAY_SSO_ROLES gives these claims. Admin wins over viewer in an organization."""
    values = _claim_values(claims, mapping.get("claim", "groups"))
    organizations = {}
    for name, admin_values in mapping.get("org_admin", {}).items():
        if values & set(admin_values):
            organizations[name] = OrganizationMembership.Role.ADMIN
    for name, viewer_values in mapping.get("viewer", {}).items():
        if name not in organizations and values & set(viewer_values):
            organizations[name] = OrganizationMembership.Role.VIEWER
    proxy_admin = bool(values & set(mapping.get("proxy_admin", [])))
    return SsoRoles(proxy_admin=proxy_admin, organizations=organizations)


def _email_verified(claims: dict) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise SsoRefused("Your identity provider sent no email address: accounts are matched by email.")
    verified = claims.get("email_verified")
    # Absent: the provider vouches for its emails (Entra); some send the flag as a string.
    if verified is False or (isinstance(verified, str) and verified.lower() == "false"):
        raise SsoRefused(f"Your email address {email} is not verified at your identity provider.")
    return email


def _username_for(email: str) -> str:
    User = get_user_model()
    username_field = User._meta.get_field(User.USERNAME_FIELD)
    try:
        username_field.run_validators(email)
        if len(email) <= username_field.max_length and not User.objects.filter(username=email).exists():
            return email
    except ValidationError:
        pass
    # Taken, or not a valid username: one derived from the email, as mozilla-django-oidc's default.
    return base64.urlsafe_b64encode(hashlib.sha256(email.lower().encode()).digest()).rstrip(b"=").decode()


def _user_rights_set(*, user: AbstractBaseUser, roles: SsoRoles, mapping: dict) -> None:
    """The user's flags, and its memberships in the organizations GATEWAY_SSO_ROLES names (the
    others are left as they are: granted by hand, not by the identity provider)."""
    if (user.is_superuser, user.is_staff) != (roles.proxy_admin, roles.granted):
        user.is_superuser, user.is_staff = roles.proxy_admin, roles.granted
        user.save(update_fields=["is_superuser", "is_staff"])
    named = set(mapping.get("org_admin", {})) | set(mapping.get("viewer", {}))
    found = Organization.objects.filter(name__in=named)
    Role = OrganizationMembership.Role
    memberships = {membership.organization_id: membership
                   for membership in OrganizationMembership.objects.filter(user=user, organization__in=found)}
    for organization in found:
        wanted, membership = roles.organizations.get(organization.name), memberships.get(organization.pk)
        if wanted is None:
            if membership is not None:
                organization_member_remove(organization=organization, user=user)
        elif membership is None:
            organization_member_add(organization=organization, user=user, role=wanted)
        elif wanted == Role.ADMIN and membership.role != wanted:
            organization_member_role_set(membership=membership, role=wanted)
        elif wanted == Role.VIEWER and membership.role == Role.ADMIN:
            # Viewer means any role but admin: a member stays a member (its keys' rights stay).
            organization_member_role_set(membership=membership, role=wanted)


def sso_user_sync(*, claims: dict) -> AbstractBaseUser:
    """The user these (verified) claims sign in as, its rights set from them: matched by email,
    created when new. Raises SsoRefused when they give no right: nobody is created then, and an
    existing user loses its admin rights (the identity provider took them away)."""
    mapping = settings.GATEWAY_SSO_ROLES
    email = _email_verified(claims)
    roles = sso_roles_from_claims(claims=claims, mapping=mapping)
    existing = set(Organization.objects.filter(name__in=roles.organizations).values_list("name", flat=True))
    if set(roles.organizations) - existing:
        logger.warning("sso: GATEWAY_SSO_ROLES names organizations that do not exist: %s",
                       sorted(set(roles.organizations) - existing))
        roles = SsoRoles(proxy_admin=roles.proxy_admin,
                         organizations={k: v for k, v in roles.organizations.items() if k in existing})
    with transaction.atomic():
        users = list(get_user_model().objects.select_for_update().filter(email__iexact=email)[:2])
        if len(users) > 1:
            raise SsoRefused(f"Several accounts have the email address {email}; ask an administrator.")
        user = users[0] if users else None
        if user is None and not roles.granted:
            raise SsoRefused(f"No role in this gateway for {email}; ask an administrator for one.")
        if user is None:
            alias = str(claims.get("name") or "")[:150]
            try:
                user = user_create(username=_username_for(email), email=email, alias=alias)
            except ValidationError as exc:  # an email longer than the field, say
                raise SsoRefused(f"No account can be made for {email}: {'; '.join(exc.messages)}") from exc
            logger.info("sso: created user %s", user.get_username())
        elif not user.is_active:
            raise SsoRefused(f"The account of {email} is deactivated.")
        _user_rights_set(user=user, roles=roles, mapping=mapping)
    if not roles.granted:  # after the commit: the demotion stays
        raise SsoRefused(f"No role in this gateway any more for {email}; ask an administrator for one.")
    return user
