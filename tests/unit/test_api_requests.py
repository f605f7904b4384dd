"""Request validation and request -> KernelSession spec (pure)."""

from __future__ import annotations

import pytest

from kubernel.images import ImageAlias, ImageTable
from kubernel.model import Owner, Resources
from kubernel_api import access
from kubernel_api.keypairs import Keypair, Role, find_secret, from_secret, to_secret
from kubernel_api.limits import Limits, exceeded
from kubernel_api.problems import Problem, ProblemType
from kubernel_api.requests import CreateRequest, StreamQuery, grant_mounts, mount_requests, parse, to_spec

IMAGES = ImageTable(
    allowed_registries=["registry.example"],
    aliases={"python:3.6": ImageAlias(image="registry.example/python:3.6")},
)

# What the Backend.AI 19.09 client sends for get_or_create(image, client_token=...).
CLIENT_BODY = {
    "tag": None,
    "clientSessionToken": "tok-01",
    "config": {
        "mounts": [],
        "environ": None,
        "clusterSize": 1,
        "resources": {},
        "resource_opts": {},
        "scalingGroup": None,
    },
    "owner_access_key": None,
    "domain": None,
    "group": None,
    "type": "interactive",
    "enqueueOnly": False,
    "maxWaitSeconds": 0,
    "reuseIfExists": True,
    "startupCommand": None,
    "image": "python:3.6",
}


def spec_of(body: dict, claims: dict | None = None):
    """As the create route does it: mounts checked against the claims' labels (all AKIAX's here)."""
    request = parse(CreateRequest, body)
    wanted = mount_requests(request.config)
    owned = {w.name: {"kubernel.io/access-key": "AKIAX"} for w in wanted} if claims is None else claims
    mounts = grant_mounts(wanted, owned, Owner(access_key="AKIAX", domain="default", group="default"))
    return to_spec(
        request,
        access_key="AKIAX",
        domain="default",
        group="default",
        images=IMAGES,
        idle_timeout_seconds=None,
        mounts=mounts,
    )


def test_the_reference_clients_body_is_accepted() -> None:
    spec = spec_of(CLIENT_BODY)
    assert spec.session_id == "tok-01" and spec.image == "python:3.6"
    assert spec.resolved_image == "registry.example/python:3.6"
    assert spec.resources == Resources() and spec.cluster_size == 1 and spec.environ == {}


def test_config_maps_onto_the_spec() -> None:
    spec = spec_of(
        {
            "clientSessionToken": "tok-02",
            "lang": "python:3.6",
            "type": "batch",
            "startupCommand": "echo",
            "tag": "x",
            "config": {
                "clusterSize": 2,
                "environ": {"A": "1"},
                "mounts": ["data", "pkgs:.local/x"],
                "resources": {"cpu": 0.5, "mem": "4g", "cuda.device": 1},
            },
        }
    )
    assert spec.type == "batch" and spec.startup_command == "echo" and spec.tag == "x"
    assert spec.resources == Resources(cpu="0.5", memory=str(4 << 30), gpu=1)
    assert [(m.name, m.path, m.read_only) for m in spec.mounts] == [
        ("data", None, False),
        ("pkgs", ".local/x", False),
    ]


@pytest.mark.parametrize(
    ("mounts", "claims", "kind"),
    [
        (["theirs"], {"theirs": {"kubernel.io/access-key": "AKIAOTHER"}}, ProblemType.VFOLDER_NOT_FOUND),
        (["nosuch"], {"nosuch": None}, ProblemType.VFOLDER_NOT_FOUND),  # the same answer: no oracle
        (["plain"], {"plain": {}}, ProblemType.VFOLDER_NOT_FOUND),  # nobody's claim
        (
            ["shared:rw"],
            {"shared": {"kubernel.io/domain": "default", "kubernel.io/access": "ro"}},
            ProblemType.FORBIDDEN,
        ),
    ],
)
def test_mounts_of_folders_the_owner_may_not_use(mounts: list[str], claims: dict, kind: ProblemType) -> None:
    with pytest.raises(Problem) as caught:
        spec_of({**CLIENT_BODY, "config": {"mounts": mounts}}, claims)
    assert caught.value.kind is kind


def test_read_only_mounts() -> None:
    claims = {
        "shared": {"kubernel.io/domain": "default", "kubernel.io/access": "ro"},
        "mine": {"kubernel.io/access-key": "AKIAX"},
    }
    spec = spec_of({**CLIENT_BODY, "config": {"mounts": ["shared", "mine:ro", "mine:data:rw"]}}, claims)
    assert [(m.name, m.path, m.read_only) for m in spec.mounts] == [
        ("shared", None, True),
        ("mine", None, True),
        ("mine", "data", False),
    ]


def test_instance_memory_is_kib() -> None:
    assert spec_of({**CLIENT_BODY, "config": {"instanceMemory": 51240}}).resources.memory == "51240Ki"


@pytest.mark.parametrize(
    ("alias", "canonical", "value"),
    [
        ("sessionType", "type", "batch"),
        ("groupName", "group", "g2"),
        ("group_name", "group", "g2"),
        ("domainName", "domain", "d1"),
        ("domain_name", "domain", "d1"),
    ],
)
def test_the_references_spellings(alias: str, canonical: str, value: str) -> None:
    body = {**CLIENT_BODY, alias: value, "startupCommand": "run"}
    del body[canonical]
    assert getattr(parse(CreateRequest, body), canonical) == value
    with pytest.raises(Problem):  # both spellings at once: which one would count?
        parse(CreateRequest, {**body, canonical: value})


@pytest.mark.parametrize(
    ("alias", "field"),
    [("cluster_size", "cluster_size"), ("scaling_group", "scaling_group"), ("resourceOpts", "resource_opts")],
)
def test_the_references_config_spellings(alias: str, field: str) -> None:
    value = {"cluster_size": 2, "scaling_group": "default", "resourceOpts": {"shmem": "1g"}}[alias]
    assert getattr(parse(CreateRequest, {**CLIENT_BODY, "config": {alias: value}}).config, field) == value


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"clientSessionToken": "a b c d"}, ProblemType.INVALID_PARAMETERS),
        ({"image": None}, ProblemType.INVALID_PARAMETERS),
        ({"type": "batch"}, ProblemType.INVALID_PARAMETERS),
        ({"image": "evil.example/x:1"}, ProblemType.IMAGE_NOT_FOUND),
        ({"config": {"resources": {"cpu": -1}}}, ProblemType.INVALID_PARAMETERS),
        ({"config": {"resources": {"cuda.device": 0.5}}}, ProblemType.INVALID_PARAMETERS),
        ({"config": {"mounts": ["../etc"]}}, ProblemType.INVALID_PARAMETERS),
    ],
)
def test_bad_requests(change: dict, kind: ProblemType) -> None:
    with pytest.raises(Problem) as caught:
        spec_of({**CLIENT_BODY, **change})
    assert caught.value.kind is kind


def test_limits() -> None:
    small = Limits(cpu="2", memory="4Gi", gpu=1, cluster_size=2)
    assert exceeded(Resources(cpu="2", memory="4Gi", gpu=1), 2, small) == []
    assert exceeded(Resources(cpu="2500m", memory="5Gi", gpu=2), 3, small) == [
        "cpu 2500m > 2",
        "memory 5Gi > 4Gi",
        "gpu 2 > 1",
        "clusterSize 3 > 2",
    ]
    assert exceeded(Resources(cpu="64"), 1, Limits()) == []


def test_stream_query_accepts_the_spellings() -> None:
    assert parse(StreamQuery, {"owner_access_key": "AK1"}).owner_access_key == "AK1"
    assert parse(StreamQuery, {"ownerAccessKey": "AK2"}).owner_access_key == "AK2"
    assert parse(StreamQuery, {"groupName": "g"}).group == "g"
    assert parse(StreamQuery, {}).session_id == "*"


USER = Keypair(access_key="AKIAUSER", secret_key="s" * 20, role=Role.USER, domain="d1", groups=("g1", "g2"))
OTHER = Keypair(access_key="AKIAOTHER", secret_key="s" * 20, role=Role.USER, domain="d2")
ADMIN = Keypair(access_key="AKIAADMIN", secret_key="s" * 20, role=Role.ADMIN, domain="d1")
ROOT = Keypair(access_key="AKIAROOT", secret_key="s" * 20, role=Role.SUPERADMIN, domain="d1")


@pytest.mark.parametrize(
    ("caller", "owner", "domain", "visible"),
    [
        (USER, "AKIAUSER", "d1", True),
        (USER, "AKIAOTHER", "d1", False),
        (ADMIN, "AKIAUSER", "d1", True),
        (ADMIN, "AKIAOTHER", "d2", False),
        (ROOT, "AKIAOTHER", "d2", True),
    ],
)
def test_visibility(caller: Keypair, owner: str, domain: str, visible: bool) -> None:
    assert access.can_see(caller, owner, domain) is visible


def test_acting_for_another_owner() -> None:
    lookup = {k.access_key: k for k in (USER, OTHER, ADMIN, ROOT)}.get
    assert access.acting_owner(USER, None, lookup) is USER
    assert access.acting_owner(USER, "AKIAUSER", lookup) is USER
    assert access.acting_owner(ADMIN, "AKIAUSER", lookup) is USER
    assert access.acting_owner(ROOT, "AKIAOTHER", lookup) is OTHER
    assert access.acting_owner(ROOT, "AKIAADMIN", lookup) is ADMIN
    # A domain admin may not borrow a superadmin's role and limits, even in its own domain.
    for caller, target in (
        (USER, "AKIAOTHER"),
        (ADMIN, "AKIAOTHER"),
        (ADMIN, "AKIANOBODY"),
        (ADMIN, "AKIAROOT"),
        (USER, "AKIAROOT"),
        (USER, "AKIAADMIN"),
    ):
        with pytest.raises(Problem) as caught:
            access.acting_owner(caller, target, lookup)
        assert caught.value.kind is ProblemType.FORBIDDEN
    assert access.check_group(USER, USER, None) == "g1" and access.check_group(USER, USER, "g2") == "g2"
    with pytest.raises(Problem) as caught:
        access.check_group(USER, USER, "g3")
    assert caught.value.kind is ProblemType.INVALID_PARAMETERS  # 19.09: "Invalid group"


def test_keypair_secret_round_trip() -> None:
    keypair = USER.model_copy(update={"limits": Limits(cpu="2", concurrent_sessions=3)})
    secret = to_secret(keypair)
    assert (
        secret["type"] == "kubernel.io/keypair" and secret["metadata"]["labels"]["kubernel.io/role"] == "user"
    )
    assert from_secret(secret) == keypair


def test_a_keypair_secret_is_found_by_its_content_not_its_name() -> None:
    renamed = to_secret(ADMIN) | {"metadata": {"name": "kubernel-bootstrap-keypair"}}
    malformed = {"metadata": {"name": "broken"}, "data": {}}
    secrets = [malformed, to_secret(USER), renamed]
    assert find_secret(secrets, ADMIN.access_key) is renamed
    assert find_secret(secrets, USER.access_key)["metadata"]["name"] == to_secret(USER)["metadata"]["name"]
    assert find_secret(secrets, "AKIANOSUCHKEY0000000") is None


def test_a_create_wait_without_limit_outlasts_any_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """maxWaitSeconds 0 is "until it starts or ends" (19.09): by default the server's cap is
    far above the operator's start deadline, which ends a session that cannot start."""
    from kubernel_api.settings import ApiSettings
    from kubernel_operator.settings import OperatorSettings

    for name in ("KUBERNEL_API_MAX_WAIT", "KUBERNEL_START_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    assert ApiSettings.from_env().max_wait_seconds >= 2 * OperatorSettings.from_env().start_deadline_seconds


@pytest.mark.parametrize(
    ("change", "revoked"),
    [
        ({"active": False}, True),
        ({"role": Role.ADMIN}, True),
        ({"domain": "d9"}, True),
        ({"groups": ("g1",)}, True),
        ({"secret_key": "t" * 20}, True),
        ({"limits": Limits(cpu="1")}, False),
        ({}, False),
    ],
)
def test_which_keypair_changes_close_its_streams(change: dict, revoked: bool) -> None:
    from kubernel_api.auth import KeypairIndex

    heard: list[set[str]] = []
    index = KeypairIndex(on_revoke=heard.append)
    secret = to_secret(USER)
    secret["metadata"]["namespace"] = "ns"
    index.on_change("", "1", [(None, secret)])
    changed = to_secret(USER.model_copy(update=change))
    changed["metadata"]["namespace"] = "ns"
    index.on_change("1", "2", [(secret, changed)])
    assert heard == ([{USER.access_key}] if revoked else [])
    index.on_change("2", "3", [(changed, None)])  # deleted: always
    assert heard[-1] == {USER.access_key} and index.get(USER.access_key) is None


@pytest.mark.parametrize(
    ("environ", "ok"),
    [
        ({"A": "x" * 4096}, True),
        ({f"V{i}": "x" for i in range(64)}, True),
        ({"A": "x" * 4097}, False),
        ({f"V{i}": "x" for i in range(65)}, False),
        ({f"V{i}": "x" * 4000 for i in range(9)}, False),  # 36 KB in all
        ({"A" * 129: "x"}, False),
    ],
)
def test_environ_is_bounded(environ: dict, ok: bool) -> None:
    """environ goes into every kernel Pod (clusterSize of them): bounded, with a clear 400."""
    body = {**CLIENT_BODY, "config": {"environ": environ}}
    if ok:
        assert spec_of(body).environ == environ
    else:
        with pytest.raises(Problem) as caught:
            spec_of(body)
        assert caught.value.kind is ProblemType.INVALID_PARAMETERS and "config.environ" in caught.value.detail


@pytest.mark.parametrize(
    ("raw", "forced"), [({}, False), ({"forced": "true"}, True), ({"forced": "false"}, False)]
)
def test_forced_is_true_or_false(raw: dict, forced: bool) -> None:
    from kubernel_api.requests import DestroyQuery, parse

    assert parse(DestroyQuery, raw).forced is forced


@pytest.mark.parametrize("raw", ["", "TRUE", "1", "yes", "maybe"])
def test_forced_refuses_anything_else(raw: str) -> None:
    from kubernel_api.problems import Problem
    from kubernel_api.requests import DestroyQuery, parse

    with pytest.raises(Problem, match="forced"):
        parse(DestroyQuery, {"forced": raw})
