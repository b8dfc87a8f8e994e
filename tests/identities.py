"""Test people, made through the services: a user with a role, tenant, projects, agreement and
an API token, ready to send as `Authorization: Bearer`."""

from __future__ import annotations

from datetime import date

from shuyu.auth import create_token, set_password
from shuyu.permissions import TENANT_ROLES, Role
from shuyu.platform import Platform
from shuyu.tenancy import add_member, add_tenant, list_tenants
from shuyu.users import add_user, record_nda

TENANT = "乌海市数据运营有限公司"
OTHER_TENANT = "鄂尔多斯数据科技有限公司"
PROJECT = "employment-insights"
PASSWORD = "correct horse battery 数域"


def enrol(
    platform: Platform,
    name: str,
    role: str,
    *,
    tenant: str | None = None,
    projects: tuple[str, ...] = (PROJECT,),
    nda: bool = True,
    organisation: str | None = None,
    password: bool = False,
) -> dict[str, str]:
    """Register `name` and return the headers that authenticate as them."""
    if Role(role) in TENANT_ROLES:
        tenant = tenant or TENANT
        if tenant not in {t["name"] for t in list_tenants(platform)}:
            add_tenant(platform, tenant)
    else:
        tenant = None
    add_user(platform, name, role, tenant=tenant, organisation=organisation)
    if Role(role) in TENANT_ROLES:
        for project in projects:
            add_member(platform, project, name)
        if nda:
            record_nda(platform, name, date(2026, 1, 5))
    if password:
        set_password(platform, name, PASSWORD)
    return bearer(platform, name)


def bearer(platform: Platform, name: str, days: int = 30) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(platform, name, 'test', days)['token']}"}
