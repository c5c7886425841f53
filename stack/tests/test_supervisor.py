"""The supervisor restarts a crashing process with growing delays and stops it for good."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import pytest
from hms_stack.launch import ExecLauncher, ForkLauncher, Launcher
from hms_stack.supervisor import BACKOFF_S, Child, Supervisor, restart_delay


def test_restart_delay_doubles_up_to_thirty_seconds_and_starts_over_after_a_stable_run() -> None:
    assert [restart_delay(n) for n in range(0, 9)] == [
        0.5,
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        15.0,
        30.0,
        30.0,
    ]
    assert max(BACKOFF_S) == 30.0


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [ExecLauncher(), ForkLauncher()], ids=["exec", "fork"])
async def test_a_crashing_service_is_restarted_with_growing_delays(
    tmp_path: Path, launcher: Launcher
) -> None:
    pkg = tmp_path / "crashy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    # each start leaves a line, then the process dies with exit code 3
    (pkg / "__main__.py").write_text(
        "import os, sys, time\n"
        "def main():\n"
        f"    open({str(tmp_path / 'starts')!r}, 'a').write(f'{{time.monotonic()}}\\n')\n"
        "    print('crashing on purpose', flush=True)\n"
        "    sys.exit(3)\n"
        "if __name__ == '__main__':\n"
        "    main()\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    child = Child(
        name="crashy",
        module="crashy",
        env=env,
        log_path=tmp_path / "crashy.log",
        http_url="http://127.0.0.1:1",
    )
    supervisor = Supervisor([child], launcher=launcher, drain_timeout_s=2)
    await supervisor.start()
    try:
        starts_file = tmp_path / "starts"
        for _ in range(100):
            if starts_file.exists() and len(starts_file.read_text().split()) >= 4:
                break
            await asyncio.sleep(0.1)
    finally:
        await supervisor.stop()
    starts = [float(t) for t in starts_file.read_text().split()]
    assert len(starts) >= 4, "restarted again and again"
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 0.5 s, 1 s, 2 s after the first, second, third crash (plus start-up time)
    assert gaps[0] >= 0.5
    assert gaps[1] >= 1.0
    assert gaps[2] >= 2.0
    assert gaps[2] > gaps[0]
    assert child.last_exit == 3
    assert "crashing on purpose" in child.log_path.read_text()
