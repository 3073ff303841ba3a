"""Fixtures of the Python scenario tests: a real relay process and device stores in temp dirs.

The `streetsync` module is the installed pip package (built by maturin in bindings/tests/run.sh) or,
with STREETSYNC_SKIP_WHEEL=1, the generated module on PYTHONPATH. The relay binary comes from
STREETSYNC_RELAY_BIN.
"""

import asyncio
import os
import subprocess

import pytest
import streetsync


class Relay:
    """A `streetsync-relay` process on a free loopback port."""

    def __init__(self, data_dir):
        binary = os.environ.get("STREETSYNC_RELAY_BIN")
        if not binary:
            raise RuntimeError("set STREETSYNC_RELAY_BIN to the streetsync-relay binary")
        env = dict(os.environ, STREETSYNC_RELAY_LOG="warn")
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1:0", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.close()
            raise RuntimeError(f"unexpected relay output: {line!r}")
        self.url = "http://" + line.removeprefix("listening on ").strip()

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def relay(tmp_path_factory):
    r = Relay(tmp_path_factory.mktemp("relay"))
    yield r
    r.close()


@pytest.fixture
def open_store(tmp_path):
    """Opens a fresh store `name` in the test's temp dir with a random storage key."""

    def _open(name):
        return streetsync.Workspace.open(str(tmp_path / f"{name}.db"), streetsync.generate_storage_key())

    return _open


@pytest.fixture
def team(open_store, relay):
    """A lead and a worker device (stores plus sync clients) in one team, enrolled by invite."""
    lead = open_store("lead")
    worker = open_store("worker")
    lead.create_team(
        streetsync.TeamSetup(team_name="Streetwork Mitte", member_name="Alex", areas=["Hauptbahnhof", "Stadtpark"])
    )
    lead_sync = lead.sync_client(relay.url)
    worker_sync = streetsync.SyncClient(worker, relay.url)

    async def enrol():
        invite = await lead_sync.create_invite("Sam", streetsync.Role.WORKER, 3600)
        await worker_sync.join_with_invite(invite.code)
        await lead_sync.sync_once(None)
        await worker_sync.sync_once(None)

    asyncio.run(enrol())
    return lead, lead_sync, worker, worker_sync
