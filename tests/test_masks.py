"""Tests of the sampling-mask statistics (a2a_cli.masks) on small hand-made masks."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from a2a_cli.masks import (
    as_mask,
    mask_report,
    never_sampled_lines,
    never_sampled_lines_by_width,
    render_text,
    save_mask_png,
)
from a2a_cli.plots import PNG_MAGIC


def line_mask(width: int, frames: list[set[int]], height: int | None = None) -> np.ndarray:
    """(T, W) line mask, or (T, height, W) with the lines repeated along the readout."""
    m = np.zeros((len(frames), width), dtype=bool)
    for t, lines in enumerate(frames):
        m[t, sorted(lines)] = True
    if height is not None:
        m = np.repeat(m[:, None, :], height, axis=1)
    return m


# Mask A: 6 frames, W=8 (centre line 4). Lines 3 and 4 in every frame, plus one more
# line per frame; line 0 twice (frames 0 and 5); line 5 never.
FRAMES_A = [{3, 4, 0}, {3, 4, 6}, {3, 4, 1}, {3, 4, 7}, {3, 4, 2}, {3, 4, 0}]

# Mask B: 4 frames, W=8, H=2: frame 2 empty, frame 3 misses the centre.
FRAMES_B = [{3, 4}, {4, 5}, set(), {6}]


@pytest.fixture
def report_a() -> dict:
    return mask_report(line_mask(8, FRAMES_A))


def test_frame_and_union_statistics(report_a):
    r = report_a
    assert r["shape"] == [6, 8]
    assert (r["n_frames"], r["n_lines"], r["orientation"], r["unit"]) == (6, 8, "lines", "lines")
    assert [f["frame"] for f in r["frames"]] == list(range(6))
    assert [f["samples"] for f in r["frames"]] == [3] * 6
    assert [f["acceleration"] for f in r["frames"]] == pytest.approx([8 / 3] * 6)
    assert r["union"] == {"samples": 7, "acceleration": pytest.approx(8 / 7), "fraction": 0.875}
    assert r["never_sampled_lines"] == [5]
    assert r["empty_frames"] == []


def test_overlap_between_frames(report_a):
    ov = report_a["overlap"]
    # lines 3, 4 (every frame) and 0 (frames 0 and 5) are sampled more than once
    assert ov["in_multiple_frames"] == 3
    assert ov["fraction_of_union"] == pytest.approx(3 / 7)
    # 30 ordered pairs of 3-line frames: 2 share 3 lines (frames 0, 5), 28 share 2
    assert ov["mean_pairwise"] == pytest.approx((2 * 1 + 28 * 2 / 3) / 30)


def test_shared_centre_and_centre_sampling(report_a):
    assert report_a["shared_lines"] == {
        "indices": [3, 4],
        "count": 2,
        "centre_block": [3, 4],
        "contiguous_around_centre": True,
    }
    assert report_a["centre"] == {"line": 4, "point": None, "sampled_in_every_frame": True, "frames_missing": []}


def test_default_split_sizes_and_chunk_statistics(report_a):
    splits = {s["split_size"]: s for s in report_a["splits"]}
    assert sorted(splits) == [1, 2, 3]  # T=6: divisors leaving at least 2 chunks
    s1, s2, s3 = splits[1], splits[2], splits[3]
    assert s1["n_chunks"] == 6 and s1["chunk_coverage"] == [0.375] * 6
    # chunks of 2: {0,3,4,6}, {1,3,4,7}, {0,2,3,4}
    assert s2["n_chunks"] == 3 and s2["leftover_frames"] == 0
    assert s2["chunk_samples"] == [4, 4, 4]
    assert s2["chunk_acceleration"] == [2.0, 2.0, 2.0]
    assert s2["chunk_coverage"] == [0.5, 0.5, 0.5]
    assert s2["chunk_centre_sampled"] == [True] * 3 and s2["centre_in_every_chunk"]
    assert s2["mean_pairwise_overlap"] == pytest.approx((0.5 + 0.5 + 0.75 + 0.75 + 0.5 + 0.5) / 6)
    # chunks of 3: {0,1,3,4,6}, {0,2,3,4,7}
    assert s3["chunk_samples"] == [5, 5]
    assert s3["chunk_acceleration"] == [1.6, 1.6]
    assert s3["mean_pairwise_overlap"] == pytest.approx(0.6)
    assert all(s["verdict"] == "ok" and s["warnings"] == [] for s in splits.values())


def test_top_level_verdict_and_recommendation(report_a):
    # the largest split that leaves two whole chunks (T = 6)
    assert report_a["recommended_split_size"] == 3
    assert report_a["verdict"] == "warning"
    assert report_a["warnings"] == [
        "lines never sampled by any frame: 1 of 8 (self-supervision cannot learn them; vary the pattern between files)"
    ]


def test_bad_split_is_unusable():
    r = mask_report(line_mask(8, FRAMES_A), split_sizes=[4])
    (s4,) = r["splits"]
    assert (s4["n_chunks"], s4["leftover_frames"], s4["verdict"]) == (1, 2, "unusable")
    assert s4["mean_pairwise_overlap"] is None
    assert any("not divisible by split size 4" in w for w in s4["warnings"])
    assert any("needs at least 2" in w for w in s4["warnings"])
    # the asked split is unusable, and the recommendation is a size that divides T
    assert r["verdict"] == "unusable"
    assert "no split size gives at least two usable chunks" in r["warnings"]
    assert r["recommended_split_size"] == 3


def test_given_split_sizes_are_all_reported():
    r = mask_report(line_mask(8, FRAMES_A), split_sizes=[4, 2, 2])
    assert [s["split_size"] for s in r["splits"]] == [2, 4]
    assert r["recommended_split_size"] == 3  # recommended among the sizes that divide T = 6
    with pytest.raises(ValueError):
        mask_report(line_mask(8, FRAMES_A), split_sizes=[0])


def test_empty_frame_and_centre_missing_chunk():
    r = mask_report(line_mask(8, FRAMES_B, height=2))
    assert r["orientation"] == "lines" and r["shape"] == [4, 2, 8]
    assert [f["samples"] for f in r["frames"]] == [2, 2, 0, 1]
    # H * W / points = 16 / (2 * lines)
    assert [f["acceleration"] for f in r["frames"]] == [4.0, 4.0, None, 8.0]
    assert r["union"] == {"samples": 4, "acceleration": 2.0, "fraction": 0.5}
    assert r["empty_frames"] == [2]
    assert r["never_sampled_lines"] == [0, 1, 2, 7]
    assert r["shared_lines"] == {"indices": [], "count": 0, "centre_block": None, "contiguous_around_centre": False}
    assert r["centre"]["sampled_in_every_frame"] is False
    assert r["centre"]["frames_missing"] == [2, 3]
    splits = {s["split_size"]: s for s in r["splits"]}
    # split 1: frame 2 is an empty chunk
    assert splits[1]["verdict"] == "unusable"
    assert any("no samples" in w for w in splits[1]["warnings"])
    # split 2: chunks {3,4,5} and {6}; the second misses the centre and is too sparse
    s2 = splits[2]
    assert s2["chunk_samples"] == [3, 1]
    assert s2["chunk_acceleration"] == pytest.approx([8 / 3, 8.0])
    assert s2["chunk_centre_sampled"] == [True, False] and not s2["centre_in_every_chunk"]
    assert s2["mean_pairwise_overlap"] == 0.0
    assert s2["verdict"] == "warning"
    assert s2["warnings"] == [
        "chunk(s) 1 miss the k-space centre (line 4)",
        "chunk(s) 1 cover less than 25% of the k-space lines (too sparse; a larger split size covers more)",
    ]
    assert r["recommended_split_size"] == 2
    assert r["verdict"] == "warning"
    assert r["warnings"][0] == "frame 2 has no samples"
    assert r["warnings"][1].startswith("lines never sampled by any frame: 4 of 8")
    assert r["warnings"][2] == "the k-space centre (line 4) is not sampled in frame(s) 2, 3"
    assert r["warnings"][3:] == [f"split size 2: {w}" for w in s2["warnings"]]


def test_non_contiguous_shared_lines():
    r = mask_report(line_mask(8, [{3, 4, 6, 0}, {3, 4, 6, 1}]))
    assert r["shared_lines"]["indices"] == [3, 4, 6]
    assert r["shared_lines"]["centre_block"] == [3, 4]
    assert r["shared_lines"]["contiguous_around_centre"] is False


def test_recommendation_prefers_larger_chunks_when_coverage_is_poor():
    # every frame: the centre line plus one other; no split reaches half of k-space
    r = mask_report(line_mask(16, [{8, t} for t in range(4)]))
    assert [s["split_size"] for s in r["splits"]] == [1, 2]
    assert r["recommended_split_size"] == 2


def test_heavy_overlap_warning():
    # a fully sampled series: every target chunk repeats its input
    r = mask_report(np.ones((4, 8), dtype=bool))
    assert r["overlap"]["mean_pairwise"] == 1.0
    assert all(s["verdict"] == "warning" for s in r["splits"])
    assert all(any("overlap heavily" in w for w in s["warnings"]) for s in r["splits"])
    assert r["recommended_split_size"] == 2


def test_point_mask_orientation_and_centre_point():
    m = np.zeros((2, 4, 8), dtype=bool)
    m[:, 2, 4] = True  # the centre point (H//2, W//2) in both frames
    m[0, 0, 1] = True  # one point, not a whole line
    m[1, 2, 3] = True
    r = mask_report(m, split_sizes=[1])
    assert r["orientation"] == "points" and r["unit"] == "points"
    assert [(f["samples"], f["acceleration"]) for f in r["frames"]] == [(2, 16.0), (2, 16.0)]
    assert r["union"]["samples"] == 3 and r["union"]["acceleration"] == pytest.approx(32 / 3)
    assert r["centre"]["point"] == [2, 4] and r["centre"]["sampled_in_every_frame"]
    assert r["never_sampled_lines"] == [0, 2, 5, 6, 7]
    # shared lines of a point mask: the centre-row point sampled in every frame
    assert r["shared_lines"]["indices"] == [4]
    assert r["shared_lines"]["contiguous_around_centre"] is True
    # a mask constant along H is a line mask whatever its dtype
    assert mask_report(np.ones((2, 4, 8), dtype=np.float32))["orientation"] == "lines"


def test_mask_layouts():
    m = line_mask(8, FRAMES_A)
    assert as_mask(m).shape == (6, 1, 8)
    assert as_mask(m[None, None, :, None, :]).shape == (6, 1, 8)  # physics layout (1, 1, T, 1, W)
    for bad in (np.zeros(8), np.zeros((0, 8)), np.zeros((2, 1, 3, 4, 5))):
        with pytest.raises(ValueError):
            as_mask(bad)


def test_single_frame_is_unusable():
    r = mask_report(line_mask(8, [{4}]))
    assert r["splits"] == [] and r["recommended_split_size"] is None
    assert r["verdict"] == "unusable"
    assert any("only 1 frame" in w for w in r["warnings"])


def test_empty_mask_is_unusable():
    r = mask_report(np.zeros((4, 8), dtype=bool))
    assert r["union"] == {"samples": 0, "acceleration": None, "fraction": 0.0}
    assert r["verdict"] == "unusable" and r["warnings"][0] == "the mask has no samples"
    json.dumps(r, allow_nan=False)


def test_report_json_round_trip(report_a):
    for r in (report_a, mask_report(line_mask(8, FRAMES_B, height=2)), mask_report(line_mask(8, FRAMES_A), [4, 5])):
        text = json.dumps(r, allow_nan=False)
        assert json.loads(text) == r


def test_never_sampled_lines_across_files():
    a = line_mask(8, [{0, 4}, {4, 5}])
    b = line_mask(8, [{1}, {4}, {7}])  # another T
    assert never_sampled_lines([a, b]).tolist() == [2, 3, 6]
    assert never_sampled_lines([a, b]).dtype == np.int64
    assert never_sampled_lines([a]).tolist() == [1, 2, 3, 6, 7]
    assert never_sampled_lines([np.ones((2, 3, 8), bool)]).tolist() == []
    assert never_sampled_lines([]).tolist() == []
    # widths differ: each width group on its own
    c = line_mask(4, [{0}, {1}])
    groups = never_sampled_lines_by_width([a, b, c])
    assert {w: v.tolist() for w, v in groups.items()} == {8: [2, 3, 6], 4: [2, 3]}
    assert never_sampled_lines([a, b, c]).tolist() == [2, 3, 6]


def test_render_text_tiny_mask():
    m = line_mask(5, [{2}, {0, 2}, set()])
    rows = render_text(m).splitlines()
    frame_rows, marker = rows[:-1], rows[-1]
    assert len(frame_rows) == 3 + 1  # T frames and the union
    assert frame_rows == ["t=00 ··█··", "t=01 █·█··", "t=02 ·····", "all  █·█··"]
    assert marker.index("^") == len("t=00 ") + 2 and "centre (line 2)" in marker


def test_render_text_bins_wide_and_long_masks():
    m = np.zeros((100, 200), dtype=bool)
    m[:, 100] = True
    m[::2, :4] = True  # half of the frames, first lines
    rows = render_text(m, max_width=50, max_rows=25).splitlines()
    assert len(rows) == 25 + 2
    assert rows[0].startswith("t=00-03 ") and rows[-2].startswith("all")
    body = [r.split(" ", 1)[1].strip() if not r.startswith("all") else r[len("all"):].strip() for r in rows[:-1]]
    assert all(len(b) == 50 for b in body)
    assert body[0][0] == "▒"  # 4 lines in the character, sampled in half of the 4 frames
    assert body[0][25] == "░"  # line 100 of the 4 in its character, in every frame
    assert body[-1][0] == "█" and body[-1][1] == "·"
    assert rows[-1].index("^") == len("t=00-03 ") + 25
    # a point mask line that is partly sampled shows as partial
    p = np.zeros((1, 4, 3), dtype=bool)
    p[0, :3, 1] = True
    assert render_text(p).splitlines()[0] == "t=00 ·▓·"


def test_save_mask_png(tmp_path):
    path = tmp_path / "mask.png"
    save_mask_png(line_mask(8, FRAMES_A), path)
    save_mask_png(np.random.default_rng(0).random((3, 4, 8)) < 0.3, tmp_path / "points.png")
    for name in ("mask.png", "points.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(os.listdir(tmp_path)) == ["mask.png", "points.png"]
