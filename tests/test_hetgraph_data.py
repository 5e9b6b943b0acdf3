"""Heterogeneous-graph loader: meta-path matrices against the shipped HeCo/MEOW files (exactly),
PathSim pruning by hand, and clear errors for missing files and labels/splits that do not match."""

import shutil

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import skip_or_fail

from cl_domains.core.errors import UserError
from cl_domains.hetgraph import SCHEMAS, context_incidence, load_heco, metapath_counts, pathsim_topk


@pytest.fixture(scope="module")
def hroot(data_root):
    if not (data_root / "hetgraph").is_dir():
        skip_or_fail(f"hetgraph data not found under {data_root}")
    return data_root


@pytest.fixture(scope="module")
def acm(hroot):
    return load_heco("acm", hroot)


@pytest.fixture(scope="module")
def dblp(hroot):
    return load_heco("dblp", hroot)


def same(a, b):
    a, b = sp.csr_matrix(a, copy=True), sp.csr_matrix(b, copy=True)
    a.sort_indices(), b.sort_indices()
    assert a.shape == b.shape and a.nnz == b.nnz
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data.astype(np.float64), b.data.astype(np.float64))


def boolean(m):
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    m.eliminate_zeros()
    m.data[:] = 1
    return m


def test_acm_heterodata_sizes_and_splits(acm):
    assert acm["paper"].x.shape == (4019, 1902) and acm["author"].num_nodes == 7167 and acm["subject"].num_nodes == 60
    assert acm["paper", "to", "author"].edge_index.shape == (2, 13407)
    assert acm["paper", "to", "subject"].edge_index.shape == (2, 4019)
    assert torch.bincount(acm["paper"].y).tolist() == [1993, 965, 1061]
    for r in (20, 40, 60):
        assert len(acm["paper"][f"train_{r}"]) == 3 * r and len(acm["paper"][f"val_{r}"]) == 1000


def test_acm_metapaths_match_heco_and_meow_files(acm, hroot):
    d = hroot / "hetgraph/acm"
    for name in ("pap", "psp"):
        counts = metapath_counts(acm, SCHEMAS["acm"].metapaths[name])
        same(boolean(counts), boolean(sp.load_npz(d / f"{name}.npz")))  # HeCo: bool, self-loops included
        same(counts, sp.load_npz(d / f"meow/{name}.npz"))  # MEOW: path counts
    ((_, nei_a),) = context_incidence(acm, SCHEMAS["acm"].metapaths["pap"])
    same(nei_a, boolean(sp.load_npz(d / "meow/nei_a.npz")))
    ((_, nei_s),) = context_incidence(acm, SCHEMAS["acm"].metapaths["psp"])
    same(nei_s, boolean(sp.load_npz(d / "meow/nei_s.npz")))


def test_acm_counts_equal_pyg_add_metapaths(acm):
    from torch_geometric.transforms import AddMetaPaths

    mp = [[("paper", "to", "author"), ("author", "rev_to", "paper")]]
    out = AddMetaPaths(mp, weighted=True)(acm.clone())
    ei, w = (
        out["paper", "metapath_0", "paper"].edge_index.numpy(),
        out["paper", "metapath_0", "paper"].edge_weight.numpy(),
    )
    same(sp.csr_matrix((w, (ei[0], ei[1])), shape=(4019, 4019)), metapath_counts(acm, ("paper", "author", "paper")))


def test_dblp_metapaths_match_heco_files(dblp, hroot):
    d = hroot / "hetgraph/dblp"
    for name, types in SCHEMAS["dblp"].metapaths.items():
        counts = metapath_counts(dblp, types)
        same(boolean(counts), boolean(sp.load_npz(d / f"{name}.npz")))
    same(metapath_counts(dblp, ("author", "paper", "author")), sp.load_npz(d / "meow/apa.npz"))
    ctx = context_incidence(dblp, SCHEMAS["dblp"].metapaths["apcpa"])
    assert [t for t, _ in ctx] == ["paper", "conference", "paper"]
    same(ctx[0][1], boolean(sp.load_npz(d / "meow/nei_ap.npz")))
    same(ctx[1][1], boolean(sp.load_npz(d / "meow/nei_apc.npz")))
    assert ctx[2][1].nnz == 10_165_000  # nei_apcp = bool(AP PC CP), computed (MEOW's file is not public)
    ctx = context_incidence(dblp, SCHEMAS["dblp"].metapaths["aptpa"])
    same(ctx[1][1], boolean(sp.load_npz(d / "meow/nei_apt.npz")))
    assert ctx[2][1].nnz == 13_414_703


def test_pathsim_topk_by_hand():
    m = sp.csr_matrix(np.array([[4, 2, 1, 0], [2, 2, 0, 1], [1, 0, 1, 1], [0, 1, 1, 3]], dtype=np.float32))
    # PathSim rows: 0: [1, 4/6, 2/5, 0]; 1: [4/6, 1, 0, 2/5]; 2: [2/5, 0, 1, 2/4]; 3: [0, 2/5, 2/4, 1]
    top = pathsim_topk(m, 2).toarray()
    np.testing.assert_array_equal(top, [[4, 2, 0, 0], [2, 2, 0, 0], [0, 0, 1, 1], [0, 0, 1, 3]])
    assert pathsim_topk(m, 10).nnz == m.nnz


@pytest.fixture()
def acm_copy(hroot, tmp_path):
    d = tmp_path / "acm"
    shutil.copytree(hroot / "hetgraph/acm", d, ignore=shutil.ignore_patterns("meow", "*.npz.*"))
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def test_folder_loads_like_the_card(acm_copy, acm):
    data = load_heco("acm", folder=acm_copy)
    assert torch.equal(data["paper"].y, acm["paper"].y)


def test_missing_file_is_a_clear_error(acm_copy, tmp_path):
    (acm_copy / "ps.txt").unlink()
    with pytest.raises(UserError, match=r"'ps\.\*'.*missing"):
        load_heco("acm", folder=acm_copy)
    with pytest.raises(UserError, match=r"hetgraph_acm.*p_feat\.npz is missing"):
        load_heco("acm", root=tmp_path / "nowhere")


def test_labels_of_another_size_is_a_clear_error(acm_copy):
    np.save(acm_copy / "labels.npy", np.load(acm_copy / "labels.npy")[:4000])
    with pytest.raises(UserError, match=r"labels .* has 4000 entries but the graph has 4019 paper nodes"):
        load_heco("acm", folder=acm_copy)


def test_splits_of_other_labels_is_a_clear_error(acm_copy):
    y = np.load(acm_copy / "labels.npy")
    np.save(acm_copy / "labels.npy", np.random.default_rng(0).permutation(y))
    with pytest.raises(UserError, match=r"train_20 should hold 20 nodes of each of the 3 classes"):
        load_heco("acm", folder=acm_copy)


def test_overlapping_or_out_of_range_splits_are_clear_errors(acm_copy):
    np.save(acm_copy / "val_40.npy", np.load(acm_copy / "test_40.npy"))
    with pytest.raises(UserError, match=r"both val_40 and test_40"):
        load_heco("acm", folder=acm_copy)
    np.save(acm_copy / "val_40.npy", np.array([0, 5000]))
    with pytest.raises(UserError, match=r"val_40.npy: node ids must lie in 0..4018"):
        load_heco("acm", folder=acm_copy)


def test_bad_edge_line_names_file_and_line(acm_copy):
    lines = (acm_copy / "pa.txt").read_text().splitlines()
    lines[6] = "3 99999"
    (acm_copy / "pa.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"pa.txt line 7: node id 99999 is out of range 0..7166"):
        load_heco("acm", folder=acm_copy)
