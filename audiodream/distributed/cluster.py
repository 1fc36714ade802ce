"""Starting or joining the Ray cluster, and sizing the learner for it.

`ray.address: null` starts a local cluster sized to this machine (or `ray.num_cpus`)
with the dashboard on `ray.dashboard_host:ray.dashboard_port` (127.0.0.1:8265 by
default); `auto` joins the cluster this machine belongs to and `ray://host:port`
connects through Ray Client. Token authentication is left as Ray configures it (on by
default since Ray 2.60: the dashboard then asks for the token `ray get-auth-token`
prints); only tests turn it off, through RAY_AUTH_MODE in their own environment.

Nothing else assumes one machine: actors exchange data only through Ray, and what
writes to run.dir is placed on the driver's node (actors.py).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Optional

import ray

from audiodream.config.loader import ConfigError
from audiodream.config.schema import LearnerConfig, RayConfig
from audiodream.distributed.actors import LearnerPlacement

log = logging.getLogger(__name__)


@dataclass
class ClusterInfo:
    address: str
    node_id: str  # the driver's node: replay and run.dir writers are pinned there
    dashboard_url: Optional[str]
    started_here: bool  # this process started the cluster (and shuts it down at the end)
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def num_gpus(self) -> float:
        return float(self.resources.get("GPU", 0.0))

    def describe(self) -> str:
        where = "local Ray cluster" if self.started_here else f"Ray cluster at {self.address}"
        cpus, gpus = self.resources.get("CPU", 0.0), self.num_gpus
        lines = [f"{where}: {cpus:g} CPUs, {gpus:g} GPUs"]
        if self.dashboard_url:
            lines.append(f"Ray dashboard: {self.dashboard_url}")
            if auth_mode() == "token":
                lines.append("  (token authentication is on: `ray get-auth-token` prints the token the dashboard asks for)")
        return "\n".join(lines)


def auth_mode() -> str:
    return os.environ.get("RAY_AUTH_MODE", "token").lower()


def _dashboard_url(context: Any) -> Optional[str]:
    url = getattr(context, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return url


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str, preferred: int, tries: int = 20) -> int:
    """`preferred`, or the next free port after it (another Ray dashboard may hold 8265)."""
    for port in range(preferred, preferred + tries):
        if _port_is_free(host, port):
            if port != preferred:
                log.warning("ray.dashboard_port %d on %s is in use; the dashboard takes port %d", preferred, host, port)
            return port
    raise RuntimeError(f"ray.dashboard_port: ports {preferred}-{preferred + tries - 1} on {host} are all in use; set ray.dashboard_port or ray.include_dashboard=false")


def _local_runtime_env() -> dict[str, Any]:
    """Workers of a local cluster import this checkout even when it is not pip-installed
    and the driver was not started from the repository root."""
    source_root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {"env_vars": {"PYTHONPATH": source_root + (os.pathsep + path if path else "")}}


def connect(cfg: RayConfig, log_to_driver: bool = True) -> ClusterInfo:
    """Start or join Ray as `cfg` says; reuse the connection if this process already has one."""
    if ray.is_initialized():
        context = ray.get_runtime_context()
        return ClusterInfo(
            address=str(context.gcs_address),
            node_id=context.get_node_id(),
            dashboard_url=None,
            started_here=False,
            resources=dict(ray.cluster_resources()),
        )
    if cfg.address is None:
        port = _free_port(cfg.dashboard_host, cfg.dashboard_port) if cfg.include_dashboard else cfg.dashboard_port
        context = ray.init(
            address="local",  # a new cluster even if `ray start` left one running on this machine
            runtime_env=_local_runtime_env(),
            num_cpus=cfg.num_cpus,
            include_dashboard=cfg.include_dashboard,
            dashboard_host=cfg.dashboard_host,
            dashboard_port=port,
            log_to_driver=log_to_driver,
        )
        started_here = True
    else:
        if cfg.address != "auto" and not cfg.address.startswith("ray://") and ":" not in cfg.address:
            raise ValueError(f"ray.address: expected null, 'auto', 'ray://host:port' or 'host:port', got {cfg.address!r}")
        context = ray.init(address=cfg.address, log_to_driver=log_to_driver)
        started_here = False
    info = ClusterInfo(
        address=str(getattr(context, "address_info", {}).get("address", cfg.address or "local")),
        node_id=ray.get_runtime_context().get_node_id(),
        dashboard_url=_dashboard_url(context) if (cfg.include_dashboard or not started_here) else None,
        started_here=started_here,
        resources=dict(ray.cluster_resources()),
    )
    print(info.describe(), flush=True)
    return info


def disconnect(info: ClusterInfo) -> None:
    """Leave the cluster; a local one this process started goes away with it."""
    if info.started_here and ray.is_initialized():
        ray.shutdown()


def learner_placement(cfg: LearnerConfig, cluster_gpus: float) -> LearnerPlacement:
    """Device and resources of the learner actor.

    `auto` takes a GPU when the cluster has one (asking Ray for it, so the learner is
    scheduled on a GPU node), else the CPU; `cuda` insists on one. Torch threads:
    `learner.num_threads`, else as many as the CPUs reserved.
    """
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ValueError(f"learner.device: expected auto, cpu or cuda, got {cfg.device!r}")
    threads = cfg.num_threads if cfg.num_threads is not None else max(1, round(cfg.num_cpus))
    if cfg.device == "cpu":
        return LearnerPlacement("cpu", cfg.num_cpus, 0.0, threads)
    if cluster_gpus <= 0:
        if cfg.device == "auto":
            return LearnerPlacement("cpu", cfg.num_cpus, 0.0, threads)
        raise ValueError("learner.device: 'cuda' was asked for, but the Ray cluster has no GPU (use learner.device=auto or cpu)")
    gpus = cfg.num_gpus if cfg.num_gpus > 0 else 1.0
    return LearnerPlacement("cuda", cfg.num_cpus, min(gpus, cluster_gpus), threads)


def check_cpus_fit(cluster: ClusterInfo, placement: LearnerPlacement, cfg: RayConfig) -> None:
    """Refuse a run whose actors ask Ray for more CPUs than the cluster has: Ray would keep
    the learner or a worker pending, and the run would wait for it forever."""
    needed = placement.num_cpus + cfg.num_workers * cfg.worker_num_cpus
    have = float(cluster.resources.get("CPU", 0.0))
    if needed > have + 1e-9:
        raise ConfigError(
            f"config keys 'learner.num_cpus' ({placement.num_cpus:g}) + 'ray.num_workers' ({cfg.num_workers}) x "
            f"'ray.worker_num_cpus' ({cfg.worker_num_cpus:g}) reserve {needed:g} CPUs, but the Ray cluster has {have:g} "
            f"(ray.num_cpus, or this machine's cores for a local cluster); lower them, or use learner.num_threads "
            f"for more learner threads without reserving more CPUs"
        )
