"""One writer per output path: a job claims its output when it is submitted.

On the embedded backend a user names output paths, and two jobs could name the same one;
the later rename would replace the bytes the earlier job reported. A claim (a lock file
next to the output: the embedded store's ``OutputClaims`` capability) refuses the second
job while the first is live, and only the claim's holder may commit to the path. A claim
left by a job that ended (or a process that died) is taken over. Adapter sets without
claims (S3, where every output is under its job's own prefix) leave ``Ports.claims`` None
and skip this.
"""

from __future__ import annotations

from tilefan.domain.spec.parse import AtomsSpec, JobSpec
from tilefan.errors import InvalidBlobError, InvalidSpecError, JobNotFoundError
from tilefan.pipeline.inputs import output_key
from tilefan.pipeline.ports import Ports


def claim_output(ports: Ports, job_id: str, spec: JobSpec) -> None:
    """Claim the job's output path, or raise InvalidSpecError naming the job that holds it."""
    claims = ports.claims
    key = output_key(job_id, spec)
    if claims is None or key is None:
        return
    field = "field_out" if isinstance(spec, AtomsSpec) else "out"
    try:
        holder = claims.claim_output(key, job_id)
    except InvalidBlobError as exc:
        raise InvalidSpecError(field, exc.reason) from None
    if holder is None or holder == job_id:
        return
    try:
        live = not ports.jobs.get_job(holder).status.terminal
    except JobNotFoundError:
        live = False
    if live:
        raise InvalidSpecError(field, f"job {holder} is writing {key}; wait for it to finish or choose another path")
    claims.take_output(key, job_id)
