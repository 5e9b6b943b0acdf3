"""Naive loop-over-anchors references of the contrastive objectives, written term by term from
the papers' formulas (scalar torch ops, so autograd gives reference gradients); no code shared
with cl_domains.core.losses."""

import torch


def cos(a, b):
    return torch.dot(a, b) / (a.norm() * b.norm())


def info_nce(q, k, t, hard=None, pos=None, w=None):
    keys = list(k) + ([] if hard is None else list(hard))
    total = 0.0
    for i in range(len(q)):
        s = [cos(q[i], kj) / t for kj in keys]
        positives = [i] if pos is None else [j for j in range(len(k)) if pos[i][j]]
        denom = 0.0
        for j, sj in enumerate(s):
            if j in positives:
                denom += torch.exp(sj)
            else:
                denom += (1.0 if w is None else w[i][j]) * torch.exp(sj)
        total += sum(-(s[p] - torch.log(denom)) for p in positives) / len(positives)
    return total / len(q)


def nt_xent(z1, z2, t, decoupled=False):
    z = list(z1) + list(z2)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        num = torch.exp(cos(z[i], z[p]) / t)
        den = sum(torch.exp(cos(z[i], z[j]) / t) for j in range(2 * n) if j != i and (not decoupled or j != p))
        total += -torch.log(num / den)
    return total / (2 * n)


def supcon(z, labels, t, agg="mean"):
    total, count = 0.0, 0
    for i in range(len(z)):
        pos = [j for j in range(len(z)) if j != i and labels[j] == labels[i]]
        if not pos:
            continue
        den = sum(torch.exp(cos(z[i], z[j]) / t) for j in range(len(z)) if j != i)
        if agg == "mean":
            total += sum(-torch.log(torch.exp(cos(z[i], z[p]) / t) / den) for p in pos) / len(pos)
        else:
            total += -torch.log(sum(torch.exp(cos(z[i], z[p]) / t) for p in pos) / den)
        count += 1
    return total / count


def mv_infonce(views, t):
    v, n = len(views), len(views[0])
    total = 0.0
    for a in range(v):
        for i in range(n):
            num = sum(torch.exp(cos(views[x][i], views[y][i]) / t) for x in range(v) for y in range(v) if x != y)
            den = sum(
                torch.exp(cos(views[a][i], views[c][j]) / t) for c in range(v) for j in range(n) if (c, j) != (a, i)
            )
            total += -torch.log(num / den)
    return total / (v * n)


def mv_dhel(views, t):
    v, n = len(views), len(views[0])
    total = 0.0
    for i in range(n):
        num = sum(torch.exp(cos(views[x][i], views[y][i]) / t) for x in range(v) for y in range(x + 1, v))
        den = torch.ones((), dtype=torch.float64)
        for a in range(v):
            den *= sum(torch.exp(cos(views[a][i], views[a][j]) / t) for j in range(n) if j != i)
        total += -torch.log(num / den)
    return total / n
