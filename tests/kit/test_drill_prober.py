"""The failover drill's prober (molecule/topology/verify_drills.py Prober): when an outage
counts as over, and its gap. CI once failed the drill with `min() arg is an empty sequence`:
the prober went on after the wait and noted one more failure, which no answer followed."""

from __future__ import annotations

import subprocess
import sys

from tests.kit.test_molecule_failure import verify_env

CHECK = """
import verify_drills as d
p = d.Prober()
p.ok = [0.0, 0.1, 0.2]
p.failed = [0.3, 0.4]
p.ok += [1.0 + i / 10 for i in range(12)]
assert not p.settled()              # answers again, but the address has not moved yet
p.moved = 0.9
assert p.settled() and abs(p.gap() - 0.8) < 1e-9, p.gap()   # 0.2 (last answer) .. 1.0
q = d.Prober()
q.ok = [i / 10 for i in range(40)]
q.moved = 1.5
assert not q.settled()              # 24 answers since the move: not yet
q.ok += [4.0 + i / 10 for i in range(6)]
assert q.settled() and q.gap() == 0.0
r = d.Prober()
r.moved, r.failed, r.ok = 0.0, [0.1], [0.2 + i / 10 for i in range(9)]
assert not r.settled()              # nine answers after the last failure: not yet
print("ok")
"""


def test_the_prober_settles_only_after_the_move_and_its_gap_has_an_end(tmp_path, test_certs):
    done = subprocess.run([sys.executable, "-c", CHECK], env=verify_env(tmp_path, test_certs),
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
