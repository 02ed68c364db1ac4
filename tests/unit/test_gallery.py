import numpy as np
import pytest

from services.recognition.gallery import Gallery, IndexSettings, identity_distance


def unit(index: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[index] = scale
    return v


def test_identify_nearest_within_threshold_with_runner_up():
    gallery = Gallery(np.stack([unit(0), unit(0, 0.9), unit(1)]), [1, 1, 2], ["Ann", "Ann", "Ben"])
    match = gallery.identify(unit(0, 0.95), threshold=0.6)
    assert (match.identity_id, match.display_name) == (1, "Ann")
    assert match.distance == pytest.approx(0.05, abs=1e-6)
    assert match.runner_up_distance == pytest.approx(np.hypot(0.95, 1.0), abs=1e-6)


def test_beyond_threshold_is_unknown_but_keeps_the_distance():
    gallery = Gallery(np.stack([unit(0)]), [1], ["Ann"])
    match = gallery.identify(unit(5), threshold=0.6)
    assert match.identity_id is None and match.distance == pytest.approx(np.sqrt(2))
    assert match.runner_up_distance is None


def test_empty_gallery_knows_nobody():
    assert Gallery.empty().identify(unit(0), threshold=0.6).identity_id is None


def test_rows_must_line_up():
    with pytest.raises(ValueError):
        Gallery(np.zeros((2, 128)), [1], ["Ann"])


def test_identities_are_scored_by_the_mean_of_their_k_nearest_samples():
    # Ann has one sample right on the probe and two far ones; Ben two samples fairly near.
    rows = np.stack([unit(0), unit(1), unit(2), unit(0, 0.7), unit(0, 0.65)])
    gallery = Gallery(rows, [1, 1, 1, 2, 2], ["Ann"] * 3 + ["Ben"] * 2, k=2)
    match = gallery.identify(unit(0), threshold=0.6)
    assert match.identity_id == 2  # two samples at 0.30 and 0.35 beat one at 0 and one at 1.41
    assert match.distance == pytest.approx(0.325, abs=1e-6)
    assert match.runner_up_distance == pytest.approx(np.sqrt(2) / 2, abs=1e-6)
    # Per sample (k=1), Ann's lucky photo wins.
    assert (
        Gallery(rows, [1, 1, 1, 2, 2], ["Ann"] * 3 + ["Ben"] * 2)
        .identify(unit(0), threshold=0.6)
        .identity_id
        == 1
    )
    # An identity with fewer than k samples is scored on the ones it has.
    assert identity_distance(np.stack([unit(0, 0.9)]), unit(0), k=3) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        identity_distance(np.zeros((0, 128)), unit(0), k=3)


def test_k_mean_search_matches_brute_force_on_a_large_gallery():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((3000, 128)).astype(np.float32) / np.sqrt(128) * 0.5
    ids = list(rng.integers(0, 400, 3000))
    gallery = Gallery(rows, ids, [f"p{i}" for i in ids], k=3)
    for probe in rows[:30] + 0.01:
        expected = {i: identity_distance(rows[np.asarray(ids) == i], probe, k=3) for i in set(ids)}
        ranked = sorted(expected, key=expected.__getitem__)
        match = gallery.identify(probe, threshold=10.0)
        assert match.identity_id == ranked[0]
        assert match.distance == pytest.approx(expected[ranked[0]], abs=1e-5)
        assert match.runner_up_distance == pytest.approx(expected[ranked[1]], abs=1e-5)


def brute_force_best(rows, ids, probe, k):
    """(best identity, its k-mean, the runner-up's k-mean) by scoring every identity."""
    ids = np.asarray(ids)
    expected = {int(i): identity_distance(rows[ids == i], probe, k=k) for i in set(ids.tolist())}
    ranked = sorted(expected, key=expected.__getitem__)
    return ranked[0], expected[ranked[0]], expected[ranked[1]]


def clustered(rng, people: int, per_person: int):
    centres = rng.standard_normal((people, 128)).astype(np.float32) * 0.06
    ids = np.repeat(np.arange(people), per_person)
    rows = centres[ids] + rng.standard_normal((len(ids), 128)).astype(np.float32) * 0.025
    return rows, ids, centres


def test_changes_of_one_identity_leave_the_gallery_as_if_built_afresh():
    rng = np.random.default_rng(1)
    rows, ids, _ = clustered(rng, 300, 4)
    gallery = Gallery(rows, ids, [f"p{i}" for i in ids], k=3, sample_ids=np.arange(len(ids)))
    # Person 7 erased, person 8 re-enrolled with two new photos, person 1000 enrolled anew,
    # and one more photo for person 9; slots freed by 7 are reused.
    gallery.remove_identity(7)
    new8 = rng.standard_normal((2, 128)).astype(np.float32) * 0.06
    gallery.replace_identity(8, "p8 renamed", new8, np.array([5000, 5001]))
    new_person = rng.standard_normal((3, 128)).astype(np.float32) * 0.06
    gallery.replace_identity(1000, "newcomer", new_person, np.array([6000, 6001, 6002]))
    added = gallery.add_samples(
        np.array([9, 9]), {9: "p9"}, np.stack([rows[36], rows[36] + 0.01]), np.array([36, 7000])
    )
    assert added == 1  # sample 36 was held already
    keep = (ids != 7) & (ids != 8)
    expected_rows = np.concatenate([rows[keep], new8, new_person, rows[36:37] + 0.01])
    expected_ids = np.concatenate([ids[keep], [8, 8], [1000] * 3, [9]])
    assert len(gallery) == len(expected_ids) and gallery.identity_count == 300
    assert gallery.name_of(8) == "p8 renamed" and not gallery.has(7)
    for probe in [rows[28], new8[0], new_person[1], rows[36] + 0.01, *rows[:10]]:
        best, distance, runner_up = brute_force_best(expected_rows, expected_ids, probe, 3)
        match = gallery.identify(probe, threshold=10.0)
        assert match.identity_id == best and match.identity_id != 7
        # float32 |a|^2 + |b|^2 - 2ab: about 1e-4 off for a probe equal to a sample
        assert match.distance == pytest.approx(distance, abs=1e-3)
        assert match.runner_up_distance == pytest.approx(runner_up, abs=1e-3)
    # Erased people are never returned, even for their own photo.
    assert gallery.identify(rows[28], threshold=0.01).identity_id is None


def test_the_gallery_grows_past_its_capacity():
    gallery = Gallery.empty(k=3)
    for person in range(700):  # 2,100 samples: the first capacity is 1,024
        gallery.replace_identity(
            person, f"p{person}", np.stack([unit(person % 128, 1 + person)] * 3), np.arange(3)
        )
    assert len(gallery) == 2100
    assert gallery.identify(unit(5, 1 + 133), threshold=0.5).identity_id == 133


def test_approximate_search_proposes_candidates_and_scores_them_exactly():
    rng = np.random.default_rng(2)
    rows, ids, centres = clustered(rng, 1500, 4)
    index = IndexSettings(approximate_from=4000, nprobe=16, candidates=64)
    gallery = Gallery(rows, ids, [f"p{i}" for i in ids], k=3, index=index)
    assert gallery.approximate
    probes = centres[:60] + rng.standard_normal((60, 128)).astype(np.float32) * 0.025
    agree = 0
    for person, probe in enumerate(probes):
        approximate = gallery.identify(probe, threshold=10.0)
        exact = gallery.identify(probe, threshold=10.0, exact=True)
        best, distance, _ = brute_force_best(rows, ids, probe, 3)
        assert exact.identity_id == best and exact.distance == pytest.approx(distance, abs=1e-5)
        if approximate.identity_id == exact.identity_id:
            # The candidate's score is its exact k-mean, not an approximation of it.
            assert approximate.distance == pytest.approx(exact.distance, abs=1e-5)
            agree += 1
        assert approximate.identity_id == person or exact.identity_id != person
    assert agree >= 57  # recall@1 of the decision against exact search
    # Changes reach the index: an erased person is gone, a new one is found.
    gallery.remove_identity(3)
    assert gallery.identify(probes[3], threshold=10.0).identity_id != 3
    gallery.replace_identity(99_999, "new", probes[3:4] + 0.001, np.array([10**6]))
    assert gallery.identify(probes[3], threshold=10.0).identity_id == 99_999


def test_below_the_threshold_search_stays_exact():
    rng = np.random.default_rng(3)
    rows, ids, _ = clustered(rng, 100, 4)
    gallery = Gallery(rows, ids, [f"p{i}" for i in ids], k=3, index=IndexSettings(1000))
    assert not gallery.approximate
    gallery.replace_identity(500, "x", rows[:1] + 0.5, np.array([9999]))
    assert not gallery.approximate


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-sq8", "hnsw"])
def test_every_index_kind_proposes_candidates_and_follows_changes(kind):
    rng = np.random.default_rng(4)
    rows, ids, centres = clustered(rng, 1500, 4)
    index = IndexSettings(approximate_from=1000, nprobe=16, candidates=64, kind=kind)
    gallery = Gallery(rows, ids, [f"p{i}" for i in ids], k=3, index=index)
    assert gallery.approximate
    probes = centres[:60] + rng.standard_normal((60, 128)).astype(np.float32) * 0.025
    agree = sum(
        gallery.identify(p, threshold=10.0).identity_id
        == gallery.identify(p, threshold=10.0, exact=True).identity_id
        for p in probes
    )
    assert agree >= 57
    gallery.remove_identity(3)  # HNSW keeps a tombstone: still never proposed
    assert gallery.identify(probes[3], threshold=10.0).identity_id != 3
    gallery.replace_identity(99_999, "new", probes[3:4] + 0.001, np.array([10**6]))
    assert gallery.identify(probes[3], threshold=10.0).identity_id == 99_999


def test_an_unknown_index_kind_is_refused():
    with pytest.raises(ValueError, match="unknown index kind"):
        IndexSettings(kind="lsh")


@pytest.mark.parametrize("approximate_from", [0, 1000])
def test_neighbours_place_a_face_among_its_own_samples_and_everyone_elses(approximate_from):
    rng = np.random.default_rng(5)
    rows, ids, centres = clustered(rng, 1500, 4)
    # Every cell searched: the index path, with the exact answer to compare.
    index = IndexSettings(approximate_from=approximate_from, nlist=64, nprobe=64)
    gallery = Gallery(rows, ids, [f"p{i}" for i in ids], k=3, index=index)
    assert gallery.approximate == bool(approximate_from)
    face = centres[7] + 0.001
    mine = gallery.neighbours(face, 7)
    distances = np.linalg.norm(rows - face, axis=1)
    assert mine.own_samples == 4
    assert mine.own_nearest == pytest.approx(distances[ids == 7].min(), abs=1e-5)
    others = np.where(ids == 7, np.inf, distances)
    assert mine.other_id == ids[int(np.argmin(others))] != 7
    assert mine.other_name == f"p{mine.other_id}"
    assert mine.other_distance == pytest.approx(others.min(), abs=1e-5)
    # For a new person nothing is their own: the nearest sample is person 7's.
    new = gallery.neighbours(face, None)
    assert (new.own_samples, new.own_nearest, new.other_id) == (0, None, 7)
    assert Gallery.empty().neighbours(face, 7) == type(new)(0, None, None, None, None)
