from tests.integration.worker_helpers import *
from tests.integration.conftest import *  # noqa
import pytest

@pytest.mark.filterwarnings("ignore:unclosed file <_io.BufferedReader:ResourceWarning")
def test_launder(dsn, store, repo, tmp_path):
    git_init(repo, commit=True)
    wf = one_task(tmp_path / "flow", {"command": fake("stray"), "timeout": 60}, writes=["src/**"], max_attempts=2)
    run_id = start_run(store, wf, repo)
    outcomes = work(dsn, run_id, until_run_ends=True)
    print([(o.status, o.detail) for o in outcomes], run_status(store, run_id), (repo / "STRAY.txt").exists())
    assert False
