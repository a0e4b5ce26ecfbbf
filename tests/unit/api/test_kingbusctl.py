"""kingbusctl against a running admin app (FakeNodeControl behind it).

``main()`` is synchronous (urllib), so it runs in a worker thread while the app serves on the
test's event loop; one test runs the installed ``kingbusctl`` script as a subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
from pathlib import Path

import pytest

from kingbus.cli import ctl
from tests.unit.api.api_fake_node import FakeNodeControl
from tests.unit.api.conftest import TOKEN, RunningNode, StartNode

PASSWORD = "Ctl-P4ssw0rd-xyz"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    return path


async def run(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(ctl.main, argv, environ=environ or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


async def test_status_prints_the_servers_json_pretty(leader: RunningNode) -> None:
    code, out, err = await run(["--admin", leader.url, "status"])
    assert (code, err) == (0, "")
    assert json.loads(out) == json.loads(json.dumps(leader.control.status()))
    assert out.startswith('{\n  "name": "kb-0"')


async def test_status_table(leader: RunningNode) -> None:
    code, out, _ = await run(["--admin", leader.url, "--format", "table", "status"])
    assert code == 0
    assert "name:        kb-0 (leader, term 3)" in out
    assert "NAME  ROLE    HEALTHY  RAFT" in out


async def test_admin_url_from_the_environment(leader: RunningNode) -> None:
    code, out, _ = await run(["members"], environ={"KINGBUS_ADMIN": leader.url})
    assert code == 0
    assert [m["name"] for m in json.loads(out)["members"]] == ["kb-0"]


async def test_members_add_list_remove(leader: RunningNode, token_file: Path) -> None:
    base = ["--admin", leader.url, "--token-file", str(token_file)]
    code, out, err = await run(
        [*base, "members", "add", "kb-1", "--raft", "10.0.0.2:7100", "--admin", "http://x:9595"]
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["member"] == {"name": "kb-1", "raft": "10.0.0.2:7100", "admin": "http://x:9595"}
    code, out, _ = await run([*base, "--format", "table", "members", "list"])
    assert code == 0 and "kb-1" in out
    assert (await run([*base, "members", "remove", "kb-1"]))[0] == 0
    assert leader.control.mutations == ["add_member kb-1", "remove_member kb-1"]


async def test_server_refusal_exits_1_with_the_reason(leader: RunningNode, token_file: Path) -> None:
    code, out, err = await run(
        ["--admin", leader.url, "--token-file", str(token_file), "members", "remove", "kb-7"]
    )
    assert (code, out) == (1, "")
    assert err == "kingbusctl: DELETE /members/kb-7: HTTP 404: no member named 'kb-7'\n"


async def test_source_set_start_stop_never_prints_the_password(
    leader: RunningNode, token_file: Path, password_file: Path
) -> None:
    base = ["--admin", leader.url, "--token-file", str(token_file)]
    outputs = []
    code, out, err = await run(
        [
            *base,
            *("source", "set", "--host", "10.0.0.5", "--port", "3307", "--user", "repl"),
            *("--password-file", str(password_file), "--start-gtid-set", "", "--semi-sync"),
        ]
    )
    outputs += [out, err]
    assert code == 0, err
    spec = leader.control.source
    assert spec is not None
    assert (spec.host, spec.port, spec.user, spec.password, spec.semi_sync) == (
        "10.0.0.5",
        3307,
        "repl",
        PASSWORD,
        True,
    )
    for action in ("start", "stop"):
        code, out, err = await run([*base, "source", action])
        outputs += [out, err]
        assert code == 0
    # A refused set (bad port) must not echo the password either.
    code, out, err = await run(
        [
            *base,
            "source",
            "set",
            "--host",
            "h",
            "--port",
            "0",
            "--user",
            "u",
            "--password-file",
            str(password_file),
        ]
    )
    outputs += [out, err]
    assert code == 1 and "port 0 out of range" in err
    assert all(PASSWORD not in text for text in outputs)
    assert leader.control.mutations == ["set_source 10.0.0.5:3307", "start_source", "stop_source"]


async def test_leader_transfer(leader: RunningNode, token_file: Path) -> None:
    await leader.control.add_member("kb-1", "10.0.0.2:7100", "http://x:1")
    code, out, err = await run(
        ["--admin", leader.url, "--token-file", str(token_file), "leader", "transfer", "--to", "kb-1"]
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == {"ok": True}
    assert leader.control.mutations[-1] == "transfer_leadership kb-1"


async def test_mutation_without_token_is_refused_locally(leader: RunningNode) -> None:
    code, _, err = await run(["--admin", leader.url, "source", "stop"])
    assert code == 1
    assert "needs the admin token: pass --token-file" in err


async def test_wrong_token_reports_the_servers_401(leader: RunningNode, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    code, _, err = await run(["--admin", leader.url, "--token-file", str(wrong), "source", "stop"])
    assert code == 1
    assert err == "kingbusctl: POST /source/stop: HTTP 401: invalid admin token\n"


async def test_unreachable_node_exits_3() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, _, err = await run(["--admin", url, "status"])
    assert code == 3
    assert err.startswith(f"kingbusctl: cannot reach {url}")


async def test_missing_token_file_is_reported(leader: RunningNode, tmp_path: Path) -> None:
    code, _, err = await run(["--admin", leader.url, "--token-file", str(tmp_path / "none"), "status"])
    assert code == 1 and "--token-file" in err and "cannot read secret" in err


async def test_through_a_follower(start_node: StartNode, leader: RunningNode, token_file: Path) -> None:
    follower = await start_node(FakeNodeControl("kb-1", leader=False, leader_admin=leader.url))
    code, _, err = await run(["--admin", follower.url, "--token-file", str(token_file), "source", "stop"])
    assert (code, err) == (0, "")
    assert leader.control.mutations == ["stop_source"]


async def test_installed_script_runs(leader: RunningNode) -> None:
    script = Path(sys.executable).with_name("kingbusctl")
    proc = await asyncio.create_subprocess_exec(
        str(script),
        "--admin",
        leader.url,
        "members",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["members"][0]["name"] == "kb-0"


async def test_retries_while_no_leader_is_known(
    start_node: StartNode, leader: RunningNode, token_file: Path
) -> None:
    follower = await start_node(FakeNodeControl("kb-1", leader=False, leader_admin=None))
    base = ["--admin", follower.url, "--token-file", str(token_file)]
    code, _, err = await run([*base, "--wait", "0", "source", "stop"])
    assert code == 1 and "no leader is known" in err

    async def leader_appears() -> None:
        await asyncio.sleep(1.2)
        follower.control.leader_admin = leader.url

    appearing = asyncio.create_task(leader_appears())
    code, _, err = await run([*base, "--wait", "10", "source", "stop"])
    await appearing
    assert (code, err) == (0, "")
    assert leader.control.mutations == ["stop_source"]


async def test_a_non_retryable_503_is_not_retried(leader: RunningNode, token_file: Path) -> None:
    leader.control.quorum = False
    started = asyncio.get_running_loop().time()
    code, _, err = await run(
        ["--admin", leader.url, "--token-file", str(token_file), "--wait", "30", "source", "stop"]
    )
    assert code == 1 and "no quorum" in err
    assert asyncio.get_running_loop().time() - started < 5


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        ctl.main(["source", "set", "--host", "h"], environ={}, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.code == 2
