"""Online-EM prior under data parallelism: two Gloo processes keep one ν, equal to one process on the global batch."""

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))


def _model():
    from test_text_model import _model as make

    return make().train()


def _global_batches():
    from test_text_model import _doc

    # 4 steps of 6 documents, then a short last batch of 1: rank 1 gets a weight-zero stand-in there
    return [[_doc(4 + (j % 5), 10 * s + j) for j in range(6)] for s in range(4)] + [[_doc(7, 99)]]


def _rank(rank: int, world: int, out: str) -> None:
    from mpmkit.distributed import DistContext, shard
    from mpmkit_text.family import collate

    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = _model()
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    with torch.no_grad():
        for docs in _global_batches():
            own, real = shard(list(range(len(docs))), DistContext(rank, world))  # as the trainer deals them
            batch = collate([docs[i] for i in own])
            if not real:
                batch.extras["stand_in"] = True
            ddp(batch)  # the EM update runs in forward
    prior = model.prior
    torch.save({"counts": prior.counts.clone(), "centres": prior.centres.detach().clone()}, f"{out}/r{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_keep_one_prior_equal_to_the_global_batch(tmp_path):
    from mpmkit_text.family import collate

    mp.spawn(_rank, args=(2, str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"r{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(r0["centres"], r1["centres"]) and torch.equal(r0["counts"], r1["counts"])
    solo = _model()
    with torch.no_grad():
        for docs in _global_batches():
            solo(collate(docs))
    torch.testing.assert_close(r0["counts"], solo.prior.counts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r0["centres"], solo.prior.centres, rtol=1e-4, atol=1e-5)
