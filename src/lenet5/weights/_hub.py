"""Hub repo ids: the files fetched with huggingface_hub, failing within seconds when unreachable.

A name of the form ``org/name`` that is no local path is tried as a Hugging Face Hub repo
id. ``hf_hub_download`` alone would, when the Hub cannot be reached and the file is not in
the cache, retry with growing pauses (1, 2, 4, 8, 8 s) before giving up: about half a
minute for a mistyped folder. So one request comes first, without retries and with a short
timeout (:data:`PROBE_TIMEOUT`): when it cannot reach the Hub, or the Hub says the repo or
file does not exist, the cached copy is used if there is one (as ``hf_hub_download`` would),
and otherwise a :class:`~lenet5.weights.WeightsError` says at once what was tried and why
it failed. When the Hub answers, ``hf_hub_download`` does the download as usual.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from .._io import CONFIG_NAME, WEIGHTS_NAME
from ._files import WeightsError

__all__ = ["PROBE_TIMEOUT", "hub_files"]

#: Seconds the first request to the Hub may take before it is taken as unreachable (the
#: ``HF_HUB_ETAG_TIMEOUT`` environment variable, when set, wins). huggingface_hub may spend
#: up to 3 s more, once per process, fetching its registry of AI agents for the user agent.
PROBE_TIMEOUT = 3.0

_COMMIT = re.compile(r"[0-9a-f]{40}")


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (huggingface_hub's messages span several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _probe_timeout() -> float:
    from huggingface_hub import constants

    if constants.HF_HUB_ETAG_TIMEOUT != constants.DEFAULT_ETAG_TIMEOUT:
        return float(constants.HF_HUB_ETAG_TIMEOUT)  # the user's choice
    return PROBE_TIMEOUT


def _probe(repo_id: str, revision: str | None, token: str | bool | None, cache: Path) -> str | None:
    """Ask the Hub once, without retries, for the weights file of ``repo_id``.

    Returns:
        ``None`` when the Hub answered that it has the file, or that it is busy (429, 5xx:
        ``hf_hub_download`` then waits and retries as usual), or when the file of that
        commit is cached (``hf_hub_download`` then asks nothing); else why the file cannot
        be had from the Hub, in words.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub import try_to_load_from_cache as cached
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if revision is not None and _COMMIT.fullmatch(revision) is not None:
        hit = cached(repo_id, WEIGHTS_NAME, cache_dir=cache, revision=revision)
        if isinstance(hit, str):
            return None
    url = hf_hub_url(repo_id, WEIGHTS_NAME, revision=revision)
    try:
        get_hf_file_metadata(url, token=token, timeout=_probe_timeout())
    except GatedRepoError:
        return f"Hub repo {repo_id!r} is gated: accept its terms on the Hub and log in"
    except RepositoryNotFoundError:
        return (
            f"the Hub has no repo {repo_id!r} (or it is private: log in with `hf auth login` "
            "or pass token=)"
        )
    except RevisionNotFoundError:
        return f"Hub repo {repo_id!r} has no revision {revision!r}"
    except RemoteEntryNotFoundError:
        return f"Hub repo {repo_id!r} has no {WEIGHTS_NAME} (lenet5 loads safetensors only)"
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 429 or (status is not None and status >= 500):
            return None  # reached, but busy: hf_hub_download's backoff is meant for this
        return f"the Hub refused the request ({_one_line(exc)})"
    except Exception as exc:  # no answer at all: DNS, connection, proxy, TLS, timeout
        return f"the Hub at {constants.ENDPOINT} cannot be reached ({_one_line(exc)})"
    return None


def _not_a_local_path(name: str) -> str:
    return (
        f"{name!r} is no local path (no such file or folder: {Path(name).absolute()}), so it "
        "was tried as a Hugging Face Hub repo id"
    )


def _not_cached(repo_id: str, reason: str | None, local_files_only: bool, cache: Path) -> str:
    """The message for a file neither had from the Hub (``reason``; ``None``: offline) nor
    found in the cache."""
    if reason is None:
        switch = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1"
        reason = f"downloading is off ({switch})"
        fix = f"download the repo once without {switch}"
    elif "Timeout" in reason:
        fix = "allow a slow Hub more time with HF_HUB_ETAG_TIMEOUT=30"
    else:
        fix = "download the repo once online (a cached repo loads with HF_HUB_OFFLINE=1)"
    return (
        f"{_not_a_local_path(repo_id)}, but {reason} and its {WEIGHTS_NAME} is not in the "
        f"Hugging Face cache ({cache}); check the path, or {fix}"
    )


def hub_files(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    token: str | bool | None,
    force_download: bool,
) -> tuple[Path, Path | None]:
    """Fetch ``model.safetensors`` (and ``config.json`` if the repo has one) of a Hub repo.

    Args:
        repo_id: ``"org/name"``, already known not to be a local path.
        revision: A branch, tag or commit.
        cache_dir: The Hugging Face cache folder (``HF_HUB_CACHE`` by default).
        local_files_only: Read the cache only (also implied by ``HF_HUB_OFFLINE=1``).
        token: An access token for private repos.
        force_download: Download again even if cached.

    Returns:
        The local paths of the weights file and of the config file (``None`` if none).

    Raises:
        WeightsError: One line: the name is no local path, so it was tried as a Hub repo
            id; why that failed (offline and not cached, the Hub unreachable and not
            cached, no such repo, revision or file); how to fix it.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    offline = local_files_only or constants.is_offline_mode()
    reason = None if offline else _probe(repo_id, revision, token, cache)
    cached_only = offline or reason is not None  # the Hub said no: what the cache has
    fetch = functools.partial(
        hf_hub_download,
        repo_id,
        revision=revision,
        cache_dir=str(cache),
        token=token,
        local_files_only=cached_only,
        force_download=force_download and not cached_only,
    )
    try:
        file = Path(fetch(WEIGHTS_NAME))
    except LocalEntryNotFoundError:
        raise WeightsError(_not_cached(repo_id, reason, local_files_only, cache)) from None
    except Exception as exc:  # the download itself: HTTP errors, disk errors, bad ids
        raise WeightsError(
            f"{_not_a_local_path(repo_id)}, but fetching its {WEIGHTS_NAME} failed "
            f"({_one_line(exc)}); check the path or the repo id"
        ) from None
    try:
        config: Path | None = Path(fetch(CONFIG_NAME))
    except Exception:  # no config.json: the tensor shapes tell the constructor arguments
        config = None
    return file, config
