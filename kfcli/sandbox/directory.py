"""The simulated corp's members and departments (GET /sandbox/directory).

Deterministic and the same for every database, so that scripts and tests can name servicers
without asking first. Userids outside this directory fail per item in servicer batches, as
unknown userids do in WeCom (60111).
"""

from __future__ import annotations

from functools import lru_cache

MEMBER_COUNT = 320
ROOT_DEPARTMENT = 1
# Department 1 is the corp itself; 2..12 are teams with a share of the members each.
DEPARTMENT_IDS = tuple(range(1, 13))


@lru_cache(maxsize=1)
def userids() -> tuple[str, ...]:
    return tuple(f"user{n:03d}" for n in range(1, MEMBER_COUNT + 1))


def department_of(userid: str) -> int:
    """The team (2..12) a member belongs to; every member is also in the root department."""
    number = int(userid.removeprefix("user"))
    return 2 + (number - 1) % (len(DEPARTMENT_IDS) - 1)


def department_members(department_id: int) -> tuple[str, ...]:
    if department_id == ROOT_DEPARTMENT:
        return userids()
    return tuple(u for u in userids() if department_of(u) == department_id)


def is_member(userid: str) -> bool:
    return userid in _member_set()


@lru_cache(maxsize=1)
def _member_set() -> frozenset[str]:
    return frozenset(userids())


# The corp's 升级服务 configuration (customer/get_upgrade_service_config, kf-api.md §2.8):
# fixed, like the directory, so that scripts can name targets without asking first.
UPGRADE_MEMBER_USERIDS = ("user001", "user002", "user003")
UPGRADE_MEMBER_DEPARTMENTS = (3,)  # every member of department 3 may be recommended too
UPGRADE_GROUPCHAT_IDS = (
    "wrSandboxGroupChat000000000001",
    "wrSandboxGroupChat000000000002",
)


def upgrade_member_allowed(userid: str) -> bool:
    if userid in UPGRADE_MEMBER_USERIDS:
        return True
    return is_member(userid) and department_of(userid) in UPGRADE_MEMBER_DEPARTMENTS
