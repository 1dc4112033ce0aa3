"""Keypoint layouts and the mapping between them, on hand-made keypoints."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeact import InputError, InputTypeError
from edgeact.data.skeleton import JOINT_NAMES
from edgeact.pose import COCO17, COCO18, LAYOUTS, KeypointLayout, LayoutMapping
from edgeact.pose.layouts import resolve_layout
from edgeact.spec import KeypointSpec


def test_coco18_is_the_synthetic_datas_layout():
    assert COCO18.joints == JOINT_NAMES and len(COCO17) == 17
    assert set(COCO18.joints) - set(COCO17.joints) == {"neck"}


def test_coco17_to_coco18_by_hand():
    # one person, COCO-17 order, x = 10 * COCO index, y = 100 + COCO index, each score its own
    kp17 = np.array([[[10.0 * i, 100.0 + i, 0.5 + 0.02 * i] for i in range(17)]], np.float32)
    kp17[0, 5] = [50.0, 105.0, 0.9]  # l_shoulder
    kp17[0, 6] = [70.0, 111.0, 0.6]  # r_shoulder
    coco = {name: kp17[0, i] for i, name in enumerate(COCO17.joints)}
    expected = np.array([[
        coco["nose"],
        [60.0, 108.0, 0.6],  # neck: mean of the shoulders, score of the less sure one
        coco["r_shoulder"], coco["r_elbow"], coco["r_wrist"],
        coco["l_shoulder"], coco["l_elbow"], coco["l_wrist"],
        coco["r_hip"], coco["r_knee"], coco["r_ankle"],
        coco["l_hip"], coco["l_knee"], coco["l_ankle"],
        coco["r_eye"], coco["l_eye"], coco["r_ear"], coco["l_ear"],
    ]], np.float32)  # fmt: skip
    mapping = LayoutMapping.between(COCO17, COCO18)
    np.testing.assert_array_equal(mapping(kp17), expected)
    assert mapping.describe() == "coco17 -> coco18 (neck = mean of l_shoulder, r_shoulder)"
    assert not mapping.is_identity and LayoutMapping.between(COCO18, COCO18).is_identity


def test_a_derived_joint_is_missing_when_one_of_its_parts_is():
    kp17 = np.ones((2, 17, 3), np.float32)
    kp17[1, 6] = [np.nan, np.nan, 0.0]  # person 1's right shoulder not found
    kp18 = LayoutMapping.between(COCO17, COCO18)(kp17)
    neck = COCO18.joints.index("neck")
    assert kp18[0, neck, 2] == 1.0 and kp18[1, neck, 2] == 0.0
    assert kp18.shape == (2, 18, 3)


def test_the_mapping_names_what_cannot_be_made():
    feet = KeypointLayout("feet", ("l_ankle", "l_big_toe", "neck"), derived={"neck": ("l_shoulder", "r_shoulder")})
    with pytest.raises(InputError, match=re.escape("keypoint layout coco17 cannot be mapped to feet: it has no "
                                                   "l_big_toe.")):
        LayoutMapping.between(COCO17, feet)
    legs = KeypointLayout("legs", ("l_knee", "r_knee"))
    with pytest.raises(InputError, match=re.escape(
            "keypoint layout legs cannot be mapped to coco18: it has no nose, neck, r_shoulder, r_elbow, r_wrist, "
            "l_shoulder, l_elbow, l_wrist, r_hip, r_ankle, l_hip, l_ankle, r_eye, l_eye, r_ear, l_ear (nor what "
            "coco18 derives them from: neck from l_shoulder, r_shoulder).")):
        LayoutMapping.between(legs, COCO18)


@pytest.mark.parametrize("kwargs, message", [
    ({"joints": ()}, "keypoint layout 'x' must name at least one joint."),
    ({"joints": ("a", "b", "a")}, "keypoint layout 'x' names the joints a more than once."),
    ({"joints": ("a",), "derived": {"b": ("a",)}}, "keypoint layout 'x' derives b, which are not its joints."),
])
def test_bad_layouts(kwargs, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        KeypointLayout("x", **kwargs)


def test_the_models_layout_from_its_joint_count_or_named():
    assert resolve_layout(None, KeypointSpec(people=2, joints=18)) is COCO18
    assert resolve_layout(None, KeypointSpec(people=1, joints=17)) is COCO17
    assert resolve_layout("coco18", KeypointSpec(people=2, joints=18)) is COCO18
    mine = KeypointLayout("mine", tuple(f"j{i}" for i in range(18)))
    assert resolve_layout(mine, KeypointSpec(people=2, joints=18)) is mine
    assert set(LAYOUTS) == {"coco17", "coco18"}


@pytest.mark.parametrize("layout, joints, error, message", [
    (None, 15, InputError, "this model takes 15 joints per person, and edgeact knows no keypoint layout of 15 "
     "joints (known: coco17 (17), coco18 (18)); pass keypoint_layout=KeypointLayout(name, joint_names) naming the "
     "joints it was trained on."),
    ("coco17", 18, InputError, "keypoint_layout coco17 has 17 joints, but this model takes 18 per person."),
    ("coco81", 18, InputError, "unknown keypoint layout 'coco81'; known: coco17, coco18. Did you mean 'coco18'?"),
    (18, 18, InputTypeError, "keypoint_layout must be a layout name (coco17, coco18), a KeypointLayout or None, "
     "got int."),
])
def test_bad_model_layouts(layout, joints, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        resolve_layout(layout, KeypointSpec(people=1, joints=joints))
