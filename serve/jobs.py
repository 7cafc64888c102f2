"""The job board of the asynchronous jobs API: one replica that holds every job's state, progress and result files.

A job is created by an ingress (status queued), advanced by the generator's progress reports (running: sampler
step i of N, then decoding), given its files by the ingress (encoding, then done) or an error (failed), or
cancelled by its owner. Job ids are unguessable; the owner is the SHA-256 of the bearer token that created it
(empty with authentication off), and only that owner sees the job. Finished jobs are kept ``ttl_s`` seconds and
while their files fit in ``max_bytes`` (the oldest go first; the newest result is always kept); at most
``max_active`` jobs run or wait at once.
"""
import time
from typing import Any, Dict, List, Optional

from ray import serve

TERMINAL = ("done", "failed", "cancelled")


@serve.deployment(name="jobs", num_replicas=1, max_ongoing_requests=512, ray_actor_options={"num_cpus": 0.1})
class JobBoard:
    def __init__(self, ttl_s: float = 600.0, max_bytes: int = 256 * 2**20, max_active: int = 64):
        self.ttl_s, self.max_bytes, self.max_active = ttl_s, max_bytes, max_active
        self.jobs: Dict[str, Dict[str, Any]] = {}

    # ------------------------------------------------------------------ lifecycle
    def create(self, job_id: str, owner: str, params: Dict[str, Any]) -> bool:
        """False when max_active jobs are queued or running already."""
        self._expire()
        if sum(j["status"] not in TERMINAL for j in self.jobs.values()) >= self.max_active:
            return False
        self.jobs[job_id] = {"id": job_id, "owner": owner, "params": params, "status": "queued",
                             "progress": {"step": 0, "total": params.get("steps", 0), "phase": "queued"},
                             "created": time.time(), "updated": time.time(), "files": {}, "bytes": 0}
        return True

    def progress(self, job_ids: List[str], step: int, total: int, phase: str) -> None:
        for job_id in job_ids:
            job = self.jobs.get(job_id)
            if job is not None and job["status"] in ("queued", "running"):
                job.update(status="running", progress={"step": step, "total": total, "phase": phase},
                           updated=time.time())

    def encoding(self, job_id: str) -> bool:
        """Mark a job as being encoded; False when it was cancelled meanwhile (its result is not wanted)."""
        job = self.jobs.get(job_id)
        if job is None or job["status"] in TERMINAL:
            return False
        job.update(status="encoding", progress={**job["progress"], "phase": "encoding"}, updated=time.time())
        return True

    def finish(self, job_id: str, files: Dict[str, bytes], metadata: Dict[str, Any]) -> None:
        job = self.jobs.get(job_id)
        if job is None or job["status"] in TERMINAL:
            return
        job.update(status="done", files=files, bytes=sum(len(b) for b in files.values()), metadata=metadata,
                   progress={**job["progress"], "phase": "done"}, updated=time.time())
        self._expire()

    def fail(self, job_id: str, code: str, message: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job["status"] not in TERMINAL:
            job.update(status="failed", error={"code": code, "message": message}, updated=time.time())

    def cancel(self, job_id: str, owner: str) -> Optional[str]:
        """The job's status after the request (None: no such job for this owner)."""
        job = self._owned(job_id, owner)
        if job is None:
            return None
        if job["status"] not in TERMINAL:
            job.update(status="cancelled", updated=time.time())
        return job["status"]

    def cancelled(self, job_ids: List[str]) -> List[str]:
        return [j for j in job_ids if j not in self.jobs or self.jobs[j]["status"] == "cancelled"]

    # ------------------------------------------------------------------ reading
    def get(self, job_id: str, owner: str) -> Optional[Dict[str, Any]]:
        self._expire()
        job = self._owned(job_id, owner)
        if job is None:
            return None
        public = {k: job[k] for k in ("id", "status", "progress", "params")}
        public.update({k: job[k] for k in ("error", "metadata") if k in job})
        public["files"] = sorted(job["files"])
        public["expires_in_s"] = round(max(0.0, job["updated"] + self.ttl_s - time.time()), 1) \
            if job["status"] in TERMINAL else None
        return public

    def file(self, job_id: str, owner: str, name: str) -> Optional[bytes]:
        job = self._owned(job_id, owner)
        return None if job is None else job["files"].get(name)

    def _owned(self, job_id: str, owner: str) -> Optional[Dict[str, Any]]:
        job = self.jobs.get(job_id)
        return job if job is not None and job["owner"] == owner else None

    def _expire(self) -> None:
        now = time.time()
        for job_id in [j for j, job in self.jobs.items() if job["status"] in TERMINAL
                       and now - job["updated"] > self.ttl_s]:
            del self.jobs[job_id]
        finished = sorted((job["updated"], j) for j, job in self.jobs.items() if job["status"] in TERMINAL)
        while len(finished) > 1 and sum(job["bytes"] for job in self.jobs.values()) > self.max_bytes:
            del self.jobs[finished.pop(0)[1]]                  # the oldest first; the newest result stays
        # a job whose ingress died mid-run stays 'running' forever otherwise
        for job in self.jobs.values():
            if job["status"] not in TERMINAL and now - job["updated"] > 4 * self.ttl_s:
                job.update(status="failed", error={"code": "lost", "message": "the job stopped reporting"},
                           updated=now)
