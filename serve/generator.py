"""The generator deployment: holds the pipeline on its device and runs batches of requests.

Compatible requests (same sampler, steps, guidance, frames) of a batch run as one pipeline call; per-request
seeds keep every video independent of its batch. Each replica loads the model's text encoder once, offline, for
free-text prompts; where it cannot, prompts are refused with the reason (``info()["prompts"]``). Requests of the
jobs API carry a job id: the sampler's progress callback reports their step to the job board, and asks it (at
most every half second) whether every job of the call was cancelled, in which case the call stops at that step
and frees its batch slot.
"""
import asyncio
import time
from collections import defaultdict
from typing import Any, Dict, List

from ray import serve

RETRY_AFTER_S = 2   # saturation: every 503 carries Retry-After
PROGRESS_EVERY_S = 0.2
CANCEL_CHECK_EVERY_S = 0.5


class Cancelled(Exception):
    """Every job of a pipeline call was cancelled."""


@serve.deployment(name="generator", max_ongoing_requests=16, max_queued_requests=32, health_check_period_s=10,
                  backpressure_config={"status_code": 503, "retry_after_s": RETRY_AFTER_S})
class Generator:
    def __init__(self, checkpoint: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.05, board=None):
        from lfdm.device import pick_device
        from lfdm.pipelines.image_to_video import ImageToVideoPipeline
        from lfdm.models.text import TextEncoderError
        self.device = str(pick_device())
        self.pipe = ImageToVideoPipeline.load(checkpoint, device=self.device)
        try:                      # once per replica, offline; a model whose encoder is not here serves labels only
            self.pipe.prompt_encoder.load()
            self.prompts = {"accepted": True, "reason": None}
        except TextEncoderError as exc:
            self.prompts = {"accepted": False, "reason": str(exc)}
        self.replica = serve.get_replica_context().replica_id.unique_id      # which replica served a request
        self.board = board
        self.generate.set_max_batch_size(max_batch_size)
        self.generate.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def info(self) -> Dict[str, Any]:
        return {"checkpoint_hash": self.pipe.checkpoint_hash, "device": self.device, "prompts": self.prompts}

    def check_health(self) -> None:
        if self.pipe is None:
            raise RuntimeError("pipeline not loaded")

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def generate(self, requests: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return await asyncio.to_thread(self._run, requests)

    def _run(self, requests: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        import torch
        from lfdm.io.outputs import frames_uint8
        groups = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r["sampler"], r["steps"], r["guidance"], r["frames"])].append(i)
        results: List[Dict[str, Any]] = [{} for _ in requests]
        for (sampler, steps, guidance, frames), idx in groups.items():
            start = time.time()
            jobs = [requests[i]["job"] for i in idx if requests[i].get("job")]
            images = torch.stack([torch.tensor(requests[i]["image"]) for i in idx])   # object-store arrays are read-only
            try:
                out = self.pipe(images, [requests[i]["label"] for i in idx], seeds=[requests[i]["seed"] for i in idx],
                                prompts=[requests[i].get("prompt") for i in idx],
                                sampler=sampler, steps=steps, guidance=guidance, num_frames=frames,
                                callback=self._progress(jobs, all_jobs=len(jobs) == len(idx)) if jobs else None)
            except Cancelled:
                for i in idx:
                    results[i] = {"cancelled": True, "replica": self.replica}
                continue
            seconds = time.time() - start
            for j, i in enumerate(idx):
                results[i] = {"frames": frames_uint8(out.frames[j]), "flows": out.flows[j].cpu().numpy(),
                              "occlusions": out.occlusions[j, 0].cpu().numpy(), "generate_seconds": seconds,
                              "batch_size": len(idx), "replica": self.replica}
        return results

    def _progress(self, jobs: List[str], all_jobs: bool):
        """The sampler callback of a call that serves ``jobs`` (all of the call's videos if ``all_jobs``)."""
        last = {"report": 0.0, "check": time.time()}

        def callback(step: int, total: int) -> None:
            now, final = time.time(), step + 1 == total
            if final or now - last["report"] >= PROGRESS_EVERY_S:
                phase = "decoding" if final else "sampling"
                self.board.progress.remote(jobs, step + 1, total, phase)        # fire and forget
                last["report"] = now
            if all_jobs and not final and now - last["check"] >= CANCEL_CHECK_EVERY_S:
                last["check"] = now
                if set(self.board.cancelled.remote(jobs).result()) >= set(jobs):
                    raise Cancelled()
        return callback

