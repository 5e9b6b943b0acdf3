"""Run folders are claimed atomically: many runs starting at once (threads and processes) each
get their own directory, with no exception."""

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

from toy_task import recipe

from cl_domains.core.runs import Run


def _create(out):
    return str(Run.create(out, recipe()).dir)


def _create_many(args):
    out, n = args
    return [_create(out) for _ in range(n)]


def test_200_concurrent_run_folders_in_threads(tmp_path):
    with ThreadPoolExecutor(max_workers=50) as pool:
        dirs = list(pool.map(_create, [tmp_path] * 200))
    assert len(set(dirs)) == 200 == len(list(tmp_path.iterdir()))
    assert all((tmp_path / d / "config.yaml").is_file() for d in dirs)


def test_200_concurrent_run_folders_in_processes(tmp_path):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        dirs = [d for part in pool.map(_create_many, [(tmp_path, 50)] * 4) for d in part]
    assert len(set(dirs)) == 200 == len(list(tmp_path.iterdir()))
