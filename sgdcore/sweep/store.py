"""The result store: one folder per sweep, one Parquet file per finished group.

Layout::

    DIR/manifest.json          format, version, spec (+ SHA-256), environment, data, groups
    DIR/groups/<group id>.parquet
    DIR/.lock                  held by the process running the sweep

Every file is written atomically (:func:`sgdcore.results.atomic_write`), so a file
that exists is complete: a group is finished exactly when its file is there, and a
sweep killed at any moment loses at most the groups that were running. Group files
carry Parquet page checksums and, in their key-value metadata, the store's spec
SHA-256 and their group id and row count, all checked when the store is opened.

A folder is refused, with a message that says why and what to do, when it is not
empty but holds no manifest (a foreign folder), when its manifest is unreadable or
of another format (corrupt or foreign), when it was made by a different spec or on
different data, when a group file is unreadable, truncated or belongs elsewhere, or
when another live process holds its lock.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pandas as pd

from ..results import atomic_write

__all__ = ["FORMAT", "FORMAT_VERSION", "ResultStore", "StoreError", "load", "read_manifest"]

FORMAT = "sgdcore.sweep-store"
FORMAT_VERSION = 1
_META_KEY = b"sgdcore.group"
_GROUP_FILE = re.compile(r"^(g\d{4,}-[0-9a-f]{12})\.parquet$")
_TMP_FILE = re.compile(r"^\..+\.tmp$")


class StoreError(RuntimeError):
    """A result store folder cannot be used; the message says why and what to do."""


def read_manifest(path) -> dict:
    """The manifest of the store at ``path``, checked to be a sweep store's.

    Raises
    ------
    StoreError
        If the folder has no manifest, or it is not valid JSON or not a sweep store's.
    """
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.is_file():
        raise StoreError(f"{path} is not a sweep result store: it has no manifest.json")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"result store {path} is corrupt: manifest.json cannot be read ({exc}); "
            "use another store folder or delete this one"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(
            f"{path} is not a sweep result store: manifest.json is not an sgdcore sweep "
            f"manifest (format {manifest.get('format') if isinstance(manifest, dict) else None!r}"
            f", expected {FORMAT!r}); use another store folder"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"result store {path} has format version {manifest.get('format_version')!r}; "
            f"this sgdcore reads version {FORMAT_VERSION}"
        )
    for key in ("spec", "spec_sha256", "groups", "data"):
        if key not in manifest:
            raise StoreError(f"result store {path} is corrupt: manifest.json lacks {key!r}")
    return manifest


class ResultStore:
    """A sweep's result folder (use :meth:`open`; see the module docstring)."""

    def __init__(self, path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self._groups = {g["id"]: g for g in manifest["groups"]}
        self._locked = False

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path, manifest: dict) -> ResultStore:
        """Create the store at ``path`` with ``manifest``, or reopen it if it matches.

        Parameters
        ----------
        path : str or os.PathLike
            The folder; created if missing.
        manifest : dict
            What this sweep would write: ``format``, ``format_version``, ``spec``,
            ``spec_sha256``, ``data`` (with ``arrays_sha256``), ``groups``, ...

        Raises
        ------
        StoreError
            If the folder belongs to something else, is corrupt, or was made by a
            different spec or on different data.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise StoreError(f"result store {path} exists and is not a folder")
        if not (path / "manifest.json").exists():
            if path.is_dir() and any(path.iterdir()):
                raise StoreError(
                    f"refusing to use {path} as a result store: the folder is not empty and "
                    "holds no sweep manifest.json (a foreign folder?); give an empty or new "
                    "store folder"
                )
            path.mkdir(parents=True, exist_ok=True)
            store = cls(path, manifest)
            store._write_manifest()
            (path / "groups").mkdir(exist_ok=True)
            return store
        old = read_manifest(path)
        if old["spec_sha256"] != manifest["spec_sha256"]:
            diff = _spec_diff(old["spec"], manifest["spec"])
            raise StoreError(
                f"result store {path} was made by a different sweep spec ({diff}); rerun "
                "with the spec that made it, or give a new store folder"
            )
        if old["data"].get("arrays_sha256") != manifest["data"].get("arrays_sha256"):
            raise StoreError(
                f"result store {path} was made on different data: it recorded "
                f"{_data_desc(old['data'])}, but this machine draws "
                f"{_data_desc(manifest['data'])}; give a new store folder"
            )
        if [g["id"] for g in old["groups"]] != [g["id"] for g in manifest["groups"]]:
            raise StoreError(
                f"result store {path} is corrupt: its manifest lists other groups than its "
                "spec makes; give a new store folder"
            )
        return cls(path, old)

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write(self.path / "manifest.json", lambda p: p.write_text(text))

    # -- lock ---------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the store's lock, taking over a stale one (its process is gone).

        Raises
        ------
        StoreError
            If a live process on this host holds it.
        """
        lock = self.path / ".lock"
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(lock.read_text())
                except (OSError, ValueError):
                    holder = {}
                if _alive(holder):
                    raise StoreError(
                        f"result store {self.path} is in use by process {holder.get('pid')} "
                        f"on {holder.get('host')}; wait for it to finish (or, if that "
                        f"process is gone, delete {lock})"
                    ) from None
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._locked = True
            self._clean_tmp()
            return
        raise StoreError(f"could not take the lock {lock}")

    def unlock(self) -> None:
        if self._locked:
            (self.path / ".lock").unlink(missing_ok=True)
            self._locked = False

    def __enter__(self) -> ResultStore:
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def _clean_tmp(self) -> None:
        """Remove half-written files a killed run left (only while holding the lock)."""
        for folder in (self.path, self.path / "groups"):
            if folder.is_dir():
                for f in folder.iterdir():
                    if _TMP_FILE.match(f.name) and f.is_file():
                        f.unlink(missing_ok=True)

    # -- groups -------------------------------------------------------------------------

    def group_path(self, group_id: str) -> Path:
        return self.path / "groups" / f"{group_id}.parquet"

    def finished(self) -> set[str]:
        """Ids of the finished groups, each file checked (see the module docstring).

        Raises
        ------
        StoreError
            On a foreign file in ``groups/`` or a group file that is unreadable,
            truncated, of another store, or of the wrong size.
        """
        folder = self.path / "groups"
        done = set()
        if not folder.is_dir():
            return done
        for f in sorted(folder.iterdir()):
            if _TMP_FILE.match(f.name):
                continue
            m = _GROUP_FILE.match(f.name)
            if not m or m.group(1) not in self._groups:
                raise StoreError(
                    f"result store {self.path} holds a file it did not write: {f}; "
                    "remove it, or give a new store folder"
                )
            self._check_group_file(m.group(1), f)
            done.add(m.group(1))
        return done

    def _check_group_file(self, group_id: str, f: Path) -> dict:
        import pyarrow.parquet as pq

        def corrupt(why: str) -> StoreError:
            return StoreError(
                f"result store {self.path} is corrupt: group file {f.name} {why}; delete that "
                "file to rerun its group"
            )

        try:
            meta = pq.read_metadata(f)
            info = json.loads((meta.metadata or {}).get(_META_KEY, b"null"))
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise corrupt(f"cannot be read ({type(exc).__name__}: {exc})") from None
        if not isinstance(info, dict):
            raise corrupt("has no sgdcore group metadata")
        expected = self._groups[group_id]
        if info.get("spec_sha256") != self.manifest["spec_sha256"] or info.get("id") != group_id:
            raise corrupt("belongs to another sweep")
        if meta.num_rows != expected["n_rows"] or info.get("n_rows") != expected["n_rows"]:
            raise corrupt(f"has {meta.num_rows} rows, expected {expected['n_rows']}")
        return info

    def write_group(self, group_id: str, df: pd.DataFrame, info: dict) -> Path:
        """Write a finished group's table atomically (with page checksums and metadata)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        expected = self._groups[group_id]
        if len(df) != expected["n_rows"]:
            raise StoreError(
                f"group {group_id} returned {len(df)} rows, expected {expected['n_rows']}"
            )
        table = pa.Table.from_pandas(df, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[_META_KEY] = json.dumps(
            {
                **info,
                "id": group_id,
                "spec_sha256": self.manifest["spec_sha256"],
                "n_rows": len(df),
            },
            default=str,
        ).encode()
        table = table.replace_schema_metadata(meta)
        path = self.group_path(group_id)
        atomic_write(path, lambda p: pq.write_table(table, p, write_page_checksum=True))
        return path

    def read_group(self, group_id: str) -> pd.DataFrame:
        """One finished group's table (page checksums verified)."""
        import pyarrow.parquet as pq

        f = self.group_path(group_id)
        try:
            table = pq.read_table(f, page_checksum_verification=True)
        except Exception as exc:
            raise StoreError(
                f"result store {self.path} is corrupt: group file {f.name} cannot be read "
                f"({type(exc).__name__}: {exc}); delete that file to rerun its group"
            ) from None
        return table.to_pandas()

    def group_info(self, group_id: str) -> dict:
        """The metadata a finished group's file carries (backend, seconds, ...)."""
        return self._check_group_file(group_id, self.group_path(group_id))

    def read(self) -> pd.DataFrame:
        """Every finished group's rows, ordered by run and step."""
        done = self.finished()
        frames = [self.read_group(g["id"]) for g in self.manifest["groups"] if g["id"] in done]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True)
        return df.sort_values(["run", "step"], kind="stable", ignore_index=True)


def load(path) -> pd.DataFrame:
    """Read the results in the store at ``path`` (finished groups only).

    Returns
    -------
    pandas.DataFrame
        The engine's tidy table (one row per run and evaluation step) plus ``run``,
        ``group`` and ``total_steps``; ``df.attrs["manifest"]`` holds the manifest.
    """
    store = ResultStore(path, read_manifest(path))
    df = store.read()
    df.attrs["manifest"] = store.manifest
    df.attrs["complete"] = len(store.finished()) == len(store.manifest["groups"])
    return df


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        # another host's lock cannot be checked from here: respect it
        return isinstance(pid, int)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spec_diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if k != "name" and old.get(k) != new.get(k))
    parts = [f"{k}: stored {old.get(k)!r}, now {new.get(k)!r}" for k in keys[:3]]
    text = "; ".join(parts) or "spec digests differ"
    return text if len(text) < 600 else text[:600] + "..."


def _data_desc(d: dict) -> str:
    train = d.get("train", {})
    return (
        f"{train.get('name')} from {train.get('source')} "
        f"(arrays sha256 {str(d.get('arrays_sha256'))[:12]})"
    )
