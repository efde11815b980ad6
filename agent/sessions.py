"""The session store: chat turns in SQLite, pictures content-addressed on disk.

A session is a tree of turns. Each turn stores the instruction, the program (JSON,
cumulative from the turn's *base* picture, so a follow-up revises it), the critique,
and the hash of its result picture; ``parent`` makes branches. A per-session cursor
says which turn is current: undo moves it to the parent, redo back down, branch to
any turn. An ``open`` turn starts from a new picture (its base is itself).

Durability: pictures are written to a temporary file, fsynced and renamed into
place *before* the row that names them is committed, so a row never points at a
missing picture; SQLite runs in WAL mode with ``synchronous=FULL`` (a committed turn
survives kill -9 and power loss). Every write is one ``BEGIN IMMEDIATE``
transaction, so several processes can append to one session: SQLite serialises them
(busy timeout) and the turn numbers stay dense and unique.

The store is a plain Python API (no CLI assumptions): the chat, batch jobs and the
server all use it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from PIL import Image as PILImage
from pydantic import BaseModel, Field

from banana.tools.values import Image

SCHEMA_VERSION = 1
TurnKind = Literal["open", "edit", "undo"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    cursor INTEGER REFERENCES turns(id)
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions(id),
    n INTEGER NOT NULL,
    parent INTEGER REFERENCES turns(id),
    kind TEXT NOT NULL,
    instruction TEXT NOT NULL,
    program TEXT,
    critique TEXT,
    picture TEXT NOT NULL,
    base TEXT NOT NULL,
    redo_child INTEGER REFERENCES turns(id),
    meta TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    UNIQUE (session, n)
);
CREATE INDEX IF NOT EXISTS turns_parent ON turns(parent);
"""


class StoreError(RuntimeError):
    """A request the store cannot satisfy (unknown session or turn, nothing to undo)."""


class Turn(BaseModel):
    """One turn of a session, as stored."""

    id: int
    session: str
    n: int = Field(description="the turn's number in its session, from 0 (the first picture)")
    parent: int | None = Field(description="the parent turn's n; None for the first turn")
    kind: TurnKind
    instruction: str
    program: dict[str, Any] | None = Field(description="cumulative program from `base`; None = the base picture itself")
    critique: dict[str, Any] | None
    picture: str = Field(description="content hash of the result picture")
    base: str = Field(description="content hash of the picture $input refers to")
    meta: dict[str, Any] = Field(default_factory=dict)
    created: float


def default_home() -> Path:
    """``$BANANA_HOME``, else ``$XDG_DATA_HOME/banana``, else ``~/.local/share/banana``."""
    if os.environ.get("BANANA_HOME"):
        return Path(os.environ["BANANA_HOME"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "banana"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def connect(db: Path, timeout: float = 60.0) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout; transactions are explicit (autocommit otherwise)."""
    conn = sqlite3.connect(db, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-then-write cannot race."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class PictureStore:
    """Pictures as PNG files named by their pixels' content hash (two-letter fan-out).

    Written with light compression (PNG level 1: about 3x faster to write than the default, ~10 % larger), since a
    chat writes one on every turn; the last few read are kept decoded (a file's content never changes: its name is
    its hash), since a chat reads the same base picture on every turn."""

    KEEP = 4

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._recent: OrderedDict[str, Image] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.png"

    def put(self, image: Image) -> str:
        digest = image.content_hash
        final = self.path(digest)
        if final.is_file():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=final.parent)
        os.close(fd)
        try:
            PILImage.fromarray(image.pixels).save(tmp, format="PNG", compress_level=1)  # pixels only: the name must match the content
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return digest

    def get(self, digest: str) -> Image:
        with self._lock:
            if digest in self._recent:
                self._recent.move_to_end(digest)
                return Image(self._recent[digest].pixels)  # a new value (its meta is its own) on the same read-only pixels
        path = self.path(digest)
        if not path.is_file():
            raise StoreError(f"picture {digest} is missing from {self.root}")
        image = Image.load(path)
        with self._lock:
            self._recent[digest] = image
            while len(self._recent) > self.KEEP:
                self._recent.popitem(last=False)
        return Image(image.pixels)


class Store:
    """Sessions and their turns under one folder: ``banana.db`` + ``pictures/``."""

    def __init__(self, root: str | Path | None = None, timeout: float = 60.0) -> None:
        self.root = Path(root) if root is not None else default_home()
        self.root.mkdir(parents=True, exist_ok=True)
        self.pictures = PictureStore(self.root / "pictures")
        self.db = connect(self.root / "banana.db", timeout)
        self.db.executescript(SCHEMA)  # idempotent; executescript commits, so it runs outside the transaction
        with write_transaction(self.db) as c:
            row = c.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                c.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise StoreError(f"{self.root / 'banana.db'} has schema version {row[0]}; this banana reads version {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ sessions

    def _session_id(self, name: str, create: bool = False) -> int:
        row = self.db.execute("SELECT id FROM sessions WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            raise StoreError(f"no session named {name!r} in {self.root}")
        self.db.execute("INSERT OR IGNORE INTO sessions (name, created) VALUES (?, ?)", (name, time.time()))
        return int(self.db.execute("SELECT id FROM sessions WHERE name = ?", (name,)).fetchone()[0])

    def create_session(self, name: str) -> str:
        """Create the session if it does not exist (idempotent); returns its name."""
        if not name or len(name) > 200:
            raise StoreError("a session name is 1 to 200 characters")
        with write_transaction(self.db):
            self._session_id(name, create=True)
        return name

    def sessions(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM sessions ORDER BY created, id")]

    def has_session(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sessions WHERE name = ?", (name,)).fetchone() is not None

    # ------------------------------------------------------------ turns

    def _turn(self, row: sqlite3.Row | tuple[Any, ...], session: str) -> Turn:
        (tid, n, parent_n, kind, instruction, program, critique, picture, base, meta, created) = row
        return Turn(id=tid, session=session, n=n, parent=parent_n, kind=kind, instruction=instruction,
                    program=json.loads(program) if program else None, critique=json.loads(critique) if critique else None,
                    picture=picture, base=base, meta=json.loads(meta), created=created)

    _SELECT = ("SELECT t.id, t.n, p.n, t.kind, t.instruction, t.program, t.critique, t.picture, t.base, t.meta, t.created "
               "FROM turns t LEFT JOIN turns p ON p.id = t.parent ")

    def turns(self, session: str) -> list[Turn]:
        """Every turn of the session, in order of creation (all branches)."""
        sid = self._session_id(session)
        rows = self.db.execute(self._SELECT + "WHERE t.session = ? ORDER BY t.n", (sid,)).fetchall()
        return [self._turn(r, session) for r in rows]

    def turn(self, session: str, n: int) -> Turn:
        sid = self._session_id(session)
        row = self.db.execute(self._SELECT + "WHERE t.session = ? AND t.n = ?", (sid, n)).fetchone()
        if row is None:
            count = self.db.execute("SELECT COUNT(*) FROM turns WHERE session = ?", (sid,)).fetchone()[0]
            raise StoreError(f"session {session!r} has no turn {n} (it has turns 0 to {count - 1})" if count
                             else f"session {session!r} has no turns yet")
        return self._turn(row, session)

    def current(self, session: str) -> Turn | None:
        """The turn under the cursor (None for a session with no picture yet)."""
        sid = self._session_id(session)
        row = self.db.execute(self._SELECT + "WHERE t.id = (SELECT cursor FROM sessions WHERE id = ?)", (sid,)).fetchone()
        return None if row is None else self._turn(row, session)

    def path(self, session: str) -> list[Turn]:
        """The turns from the first picture to the cursor (what the current picture is made of)."""
        by_n = {t.n: t for t in self.turns(session)}
        cur = self.current(session)
        out: list[Turn] = []
        while cur is not None:
            out.append(cur)
            cur = by_n.get(cur.parent) if cur.parent is not None else None
        return out[::-1]

    def add_turn(
        self,
        session: str,
        *,
        instruction: str,
        picture: Image | str,
        kind: TurnKind = "edit",
        program: dict[str, Any] | None = None,
        critique: dict[str, Any] | None = None,
        base: str | None = None,
        parent: int | Literal["cursor"] | None = "cursor",
        meta: dict[str, Any] | None = None,
    ) -> Turn:
        """Append a turn (a child of the cursor unless ``parent`` names a turn n) and move the cursor to it.

        The picture is on disk before the row is committed. ``base`` defaults to the parent's
        base (the picture itself for an ``open`` turn).
        """
        digest = self.pictures.put(picture) if isinstance(picture, Image) else picture
        if not self.pictures.path(digest).is_file():
            raise StoreError(f"picture {digest} is not in the store; pass the Image")
        with write_transaction(self.db) as c:
            sid = self._session_id(session, create=True)
            if parent == "cursor":
                parent_id = c.execute("SELECT cursor FROM sessions WHERE id = ?", (sid,)).fetchone()[0]
            elif parent is None:
                parent_id = None
            else:
                row = c.execute("SELECT id FROM turns WHERE session = ? AND n = ?", (sid, parent)).fetchone()
                if row is None:
                    raise StoreError(f"session {session!r} has no turn {parent}")
                parent_id = row[0]
            if base is None:
                if kind == "open":
                    base = digest
                elif parent_id is None:
                    raise StoreError(f"session {session!r} has no picture yet; open one first")
                else:
                    base = c.execute("SELECT base FROM turns WHERE id = ?", (parent_id,)).fetchone()[0]
            n = c.execute("SELECT COALESCE(MAX(n) + 1, 0) FROM turns WHERE session = ?", (sid,)).fetchone()[0]
            cur = c.execute(
                "INSERT INTO turns (session, n, parent, kind, instruction, program, critique, picture, base, meta, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, n, parent_id, kind, instruction, json.dumps(program) if program is not None else None,
                 json.dumps(critique) if critique is not None else None, digest, base, json.dumps(meta or {}), time.time()))
            new_id = cur.lastrowid
            if parent_id is not None:
                c.execute("UPDATE turns SET redo_child = ? WHERE id = ?", (new_id, parent_id))
            c.execute("UPDATE sessions SET cursor = ? WHERE id = ?", (new_id, sid))
        return self.turn(session, n)

    def undo(self, session: str) -> Turn:
        """Move the cursor to the parent turn; redo comes back to where it was."""
        with write_transaction(self.db) as c:
            sid = self._session_id(session)
            row = c.execute("SELECT t.id, t.parent FROM turns t JOIN sessions s ON s.cursor = t.id WHERE s.id = ?", (sid,)).fetchone()
            if row is None or row[1] is None:
                raise StoreError("nothing to undo")
            c.execute("UPDATE turns SET redo_child = ? WHERE id = ?", (row[0], row[1]))
            c.execute("UPDATE sessions SET cursor = ? WHERE id = ?", (row[1], sid))
        return self._current_or_fail(session)

    def redo(self, session: str) -> Turn:
        """Move the cursor to the child it last came from (or the newest child)."""
        with write_transaction(self.db) as c:
            sid = self._session_id(session)
            row = c.execute("SELECT t.id, t.redo_child FROM turns t JOIN sessions s ON s.cursor = t.id WHERE s.id = ?",
                            (sid,)).fetchone()
            if row is None:
                raise StoreError("nothing to redo")
            child = row[1] or (c.execute("SELECT MAX(id) FROM turns WHERE parent = ?", (row[0],)).fetchone()[0])
            if child is None:
                raise StoreError("nothing to redo")
            c.execute("UPDATE sessions SET cursor = ? WHERE id = ?", (child, sid))
        return self._current_or_fail(session)

    def branch(self, session: str, n: int) -> Turn:
        """Move the cursor to turn n; the next turn becomes a new branch from it."""
        with write_transaction(self.db) as c:
            sid = self._session_id(session)
            row = c.execute("SELECT id FROM turns WHERE session = ? AND n = ?", (sid, n)).fetchone()
            if row is None:
                raise StoreError(f"session {session!r} has no turn {n}")
            c.execute("UPDATE sessions SET cursor = ? WHERE id = ?", (row[0], sid))
        return self._current_or_fail(session)

    def _current_or_fail(self, session: str) -> Turn:
        turn = self.current(session)
        if turn is None:
            raise StoreError(f"session {session!r} has no turns yet")
        return turn

    def picture(self, digest: str) -> Image:
        return self.pictures.get(digest)

    def integrity(self) -> str:
        """SQLite's own integrity check ('ok' when the file is sound)."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])
