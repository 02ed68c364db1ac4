"""The recognition gallery kept in step with PostgreSQL by deltas (real Postgres and Redis)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from services.dashboard.enrolment import announce_change, gallery_changed
from services.recognition import stream
from services.recognition.stream import GalleryHolder
from watchpost.db import identities
from watchpost.keys import Keys


def face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(128).astype(np.float32) * 0.06


def add_person(conn, name: str, *seeds: int) -> int:
    person = identities.create_identity(conn, display_name=name)
    for seed in seeds:
        identities.add_face_sample(
            conn, identity_id=person["id"], embedding=face(seed), box=(0, 0, 9, 9), image_jpeg=b"j"
        )
    return int(person["id"])


def known(holder: GalleryHolder, seed: int) -> str | None:
    return holder.refresh().identify(face(seed), threshold=0.3).display_name


def test_binary_load_reads_what_the_row_by_row_load_reads(pool):
    with pool.connection() as conn:
        for n in range(30):
            add_person(conn, f"p{n}", 3 * n, 3 * n + 1)
        conn.commit()
        matrix, ids, names = identities.load_gallery(conn)
        snapshot = identities.load_gallery_binary(conn, chunk_bytes=5000)  # several chunks
    order = np.argsort(snapshot.sample_ids)
    assert np.array_equal(snapshot.embeddings[order], matrix)
    assert snapshot.identity_ids[order].tolist() == ids
    assert [snapshot.names[i] for i in snapshot.identity_ids[order].tolist()] == names


def test_binary_load_refuses_an_embedding_it_cannot_read(pool):
    with pool.connection() as conn:
        person = add_person(conn, "x", 1)
        conn.execute(
            "UPDATE face_samples SET embedding[5] = NULL WHERE identity_id = %s", (person,)
        )
        with pytest.raises(identities.GalleryFormatError, match="128 float4"):
            identities.load_gallery_binary(conn)


def test_enrolment_rename_and_erasure_reach_two_replicas_at_their_next_look(
    pool, redis_client, prefix
):
    keys = Keys(prefix)
    replicas = [GalleryHolder(pool, redis_client, keys, k=1) for _ in range(2)]
    with pool.connection() as conn:
        add_person(conn, "Ann", 1, 2)
        conn.commit()
    for holder in replicas:
        holder.ensure_loaded()
    with pool.connection() as conn:
        ben = add_person(conn, "Ben", 10, 11)
        gallery_changed(conn, redis_client, keys, ben)
    assert [known(h, 10) for h in replicas] == ["Ben", "Ben"]
    with pool.connection() as conn:
        identities.update_identity(conn, ben, display_name="Benjamin")
        gallery_changed(conn, redis_client, keys, ben)
    assert [known(h, 11) for h in replicas] == ["Benjamin", "Benjamin"]
    with pool.connection() as conn:
        (one_face, _) = identities.list_faces(conn, ben)
        owner = identities.delete_face(conn, one_face["id"])
        assert owner == ben
        gallery_changed(conn, redis_client, keys, owner)
    assert [len(h.refresh()) for h in replicas] == [3, 3]
    with pool.connection() as conn:
        identities.delete_identity(conn, ben)
        gallery_changed(conn, redis_client, keys, ben)
    # Erased: gone from both at the very next look, without a full reload.
    loads = [h.gallery for h in replicas]
    assert [known(h, 11) for h in replicas] == [None, None]
    assert [h.gallery for h in replicas] == loads
    assert [known(h, 1) for h in replicas] == ["Ann", "Ann"]


def test_an_enrolment_committed_while_the_first_load_reads_is_not_lost(
    pool, redis_client, prefix, monkeypatch
):
    keys = Keys(prefix)
    read = identities.load_gallery_binary

    def read_then_enrol(conn, **kwargs):
        snapshot = read(conn, **kwargs)  # the snapshot is taken; then someone enrols
        with pool.connection() as other:
            person = add_person(other, "Late", 50)
            gallery_changed(other, redis_client, keys, person)
        return snapshot

    monkeypatch.setattr(identities, "load_gallery_binary", read_then_enrol)
    holder = GalleryHolder(pool, redis_client, keys, k=1)
    gallery = holder.load()
    assert gallery.identify(face(50), threshold=0.3).display_name == "Late"


def test_an_erasure_committed_while_the_load_reads_is_applied(
    pool, redis_client, prefix, monkeypatch
):
    keys = Keys(prefix)
    with pool.connection() as conn:
        person = add_person(conn, "Gone", 60, 61)
        conn.commit()
    read = identities.load_gallery_binary

    def read_then_erase(conn, **kwargs):
        snapshot = read(conn, **kwargs)  # still holds the person
        with pool.connection() as other:
            identities.delete_identity(other, person)
            gallery_changed(other, redis_client, keys, person)
        return snapshot

    monkeypatch.setattr(identities, "load_gallery_binary", read_then_erase)
    gallery = GalleryHolder(pool, redis_client, keys, k=1).load()
    assert gallery.identify(face(60), threshold=0.3).identity_id is None and len(gallery) == 0


def test_concurrent_enrolments_and_lookups_end_with_every_person(pool, redis_client, prefix):
    keys = Keys(prefix)
    holder = GalleryHolder(pool, redis_client, keys, k=1)
    holder.ensure_loaded()
    stop = threading.Event()
    errors: list[BaseException] = []

    def look() -> None:
        while not stop.is_set():
            try:
                holder.refresh().identify(face(0), threshold=0.3)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return

    def enrol(first: int) -> None:
        for n in range(first, first + 10):
            with pool.connection() as conn:
                person = add_person(conn, f"c{n}", 1000 + n)
                gallery_changed(conn, redis_client, keys, person)

    lookers = [threading.Thread(target=look) for _ in range(2)]
    writers = [threading.Thread(target=enrol, args=(n,)) for n in (0, 10)]
    for t in lookers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in lookers:
        t.join()
    assert not errors
    assert {known(holder, 1000 + n) for n in range(20)} == {f"c{n}" for n in range(20)}


def test_a_change_log_trimmed_past_its_place_reloads_in_full(pool, redis_client, prefix):
    keys = Keys(prefix)
    holder = GalleryHolder(pool, redis_client, keys, k=1)
    with pool.connection() as conn:
        first = add_person(conn, "First", 70)
        gallery_changed(conn, redis_client, keys, first)
    holder.ensure_loaded()
    for _ in range(3):
        announce_change(redis_client, keys, first)
    redis_client.xtrim(
        keys.gallery_changes, maxlen=1, approximate=False
    )  # this replica's place is gone
    with pool.connection() as conn:  # a change whose notice is among the trimmed ones
        conn.execute("DELETE FROM face_samples")
        conn.commit()
    before = holder.gallery
    holder.refresh()
    assert holder.reload_thread is not None
    holder.reload_thread.join(10)
    assert holder.gallery is not before and len(holder.refresh()) == 0


def test_an_unreadable_change_log_entry_reloads_in_full(pool, redis_client, prefix):
    """An entry that is not a GalleryChange (a foreign writer, an older format) cannot say which
    identity changed: the replica reloads everything rather than guess, and keeps answering."""
    keys = Keys(prefix)
    holder = GalleryHolder(pool, redis_client, keys, k=1)
    holder.ensure_loaded()
    with pool.connection() as conn:
        person = add_person(conn, "Hidden", 90)
        conn.commit()  # stored, but its only notice is unreadable
    redis_client.xadd(keys.gallery_changes, {"identity": str(person)})
    redis_client.incr(keys.gallery_version)
    holder.refresh()
    assert holder.reload_thread is not None
    holder.reload_thread.join(10)
    assert known(holder, 90) == "Hidden"


def test_reconcile_finds_a_change_whose_notice_was_lost(pool, redis_client, prefix, monkeypatch):
    keys = Keys(prefix)
    with pool.connection() as conn:
        person = add_person(conn, "Lost", 80)
        conn.commit()
    holder = GalleryHolder(pool, redis_client, keys, k=1)
    holder.ensure_loaded()
    assert holder.reconcile()
    with pool.connection() as conn:  # erased, and Redis was away for the notice
        identities.delete_identity(conn, person)
        conn.commit()
    reloads = []
    monkeypatch.setattr(holder, "reload_in_background", lambda: reloads.append(holder.load()))
    assert not holder.reconcile()
    assert len(reloads) == 1 and known(holder, 80) is None


def test_recognition_is_not_ready_until_its_gallery_is_loaded(pool, redis_client, prefix):
    holder = GalleryHolder(pool, redis_client, Keys(prefix))
    assert not holder.loaded
    stop = threading.Event()
    loop = threading.Thread(target=holder.run, args=(stop,), kwargs={"reconcile_every_s": 3600})
    loop.start()
    assert stream  # the module under test runs the loop
    holder.ensure_loaded()  # waits for the loop's load rather than starting a second one
    stop.set()
    loop.join(5)
    assert holder.loaded and not loop.is_alive()


def test_the_change_log_works_on_the_embedded_redis_6_too(pool, tmp_path):
    """`make up` runs on the embedded Redis (6.2), whose XINFO STREAM does not count the
    entries ever added: changes still arrive, and a log trimmed past the replica's place still
    makes it reload in full (told by the oldest entry left)."""
    import redis as redis_py

    from watchpost.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis")
    client = redis_py.Redis.from_url(server.start())
    try:
        assert client.info()["redis_version"].startswith("6.")
        keys = Keys("embedded")
        holder = GalleryHolder(pool, client, keys, k=1)
        holder.ensure_loaded()
        with pool.connection() as conn:
            person = add_person(conn, "Six", 95)
            gallery_changed(conn, client, keys, person)
        assert known(holder, 95) == "Six"
        assert holder.reload_thread is None  # a plain change is no reason to reload
        for _ in range(3):
            announce_change(client, keys, person)
        client.xtrim(keys.gallery_changes, maxlen=1, approximate=False)
        holder.refresh()
        assert holder.reload_thread is not None
        holder.reload_thread.join(10)
        assert known(holder, 95) == "Six"
    finally:
        client.close()
        server.stop()
