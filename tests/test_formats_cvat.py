"""CVAT for images 1.1 XML: a spec-built task export with labels, every shape, z_order and occluded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workshop.data.formats import detect_format, instance_masks, read_annotations, semantic_mask
from workshop.errors import DataError

# pycocotools' decode trips a NumPy 2 deprecation notice that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")

XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>3</id><name>streets</name><size>4</size><mode>annotation</mode><overlap>0</overlap>
      <labels>
        <label><name>road</name><color>#ff0000</color><type>any</type><attributes/></label>
        <label><name>car</name><color>#00ff00</color><type>any</type>
          <attributes><attribute><name>parked</name><mutable>False</mutable><input_type>checkbox</input_type>
          <default_value>false</default_value><values>false
true</values></attribute></attributes></label>
        <label><name>tree</name><color>#0000ff</color><type>any</type><attributes/></label>
      </labels>
    </task>
    <dumped>2024-01-01 00:00:00.000000+00:00</dumped>
  </meta>
  <image id="0" name="images/a.png" width="20" height="10">
    <box label="car" source="manual" occluded="1" xtl="2" ytl="2" xbr="6" ybr="5" z_order="1">
      <attribute name="parked">true</attribute>
    </box>
    <polygon label="road" source="manual" occluded="0" points="0.00,0.00;20.00,0.00;20.00,10.00;0.00,10.00" z_order="0"/>
    <polyline label="road" source="manual" occluded="0" points="0,0;5,5" z_order="0"/>
    <points label="tree" source="manual" occluded="0" points="3,3" z_order="0"/>
    <tag label="road" source="manual"/>
  </image>
  <image id="1" name="images/b.png" width="20" height="10">
    <mask label="tree" source="manual" occluded="0" rle="1, 2, 1, 2" left="4" top="3" width="3" height="2" z_order="0"/>
    <mask label="tree" source="manual" occluded="0" rle="1, 2, 1, 3" left="0" top="0" width="3" height="2" z_order="0"/>
    <box label="car" source="manual" occluded="0" xtl="10" ytl="4" xbr="14" ybr="6" rotation="90.0" z_order="0"/>
    <ellipse label="tree" source="manual" occluded="0" cx="16" cy="5" rx="3" ry="2" z_order="0"/>
  </image>
  <image id="2" name="images/c.png" width="20" height="10"/>
  <image id="3" name="images/gone.png" width="20" height="10">
    <box label="bus" source="manual" occluded="0" xtl="0" ytl="0" xbr="1" ybr="1" z_order="0"/>
  </image>
</annotations>
"""


@pytest.fixture
def export(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (20, 10)).save(tmp_path / "images" / name)
    path = tmp_path / "annotations.xml"
    path.write_text(XML)
    return path


def test_cvat_export_reads_labels_shapes_and_order(export):
    assert detect_format(export) == "cvat"
    s = read_annotations(export)
    assert s.format == "cvat" and s.labels == ["road", "car", "tree", "bus"]
    assert [img.name for img in s.images] == ["images/a.png", "images/b.png"]
    a, b = s.images
    assert [(o.shape, o.kind, o.label, o.z_order, o.occluded) for o in a.objects] == [
        ("box", "box", "car", 1, True), ("polygon", "polygon", "road", 0, False)]
    assert a.objects[0].attributes == {"parked": "true"}
    ids = {"road": 1, "car": 2, "tree": 3, "bus": 4}
    m = semantic_mask(a.objects, ids, a.height, a.width)
    # the car (z_order 1) stays on top of the road drawn after it (z_order 0)
    assert (m == 2).sum() == 4 * 3 and (m[2:5, 2:6] == 2).all() and (m == 1).sum() == 200 - 12

    masks, labels, _ = instance_masks(b.objects, ids, b.height, b.width)
    # mask rle runs row by row in its 3x2 box at (4, 3), background first: 0 | 1 1 | 0 | 1 1
    expected = np.zeros((10, 20), dtype=bool)
    expected[3:5, 5:7] = True
    assert (masks[0] == expected).all() and labels.tolist() == [3, 2, 3]
    # a 4 wide x 2 high box turned 90 degrees about its centre (12, 5): 2 wide x 4 high
    assert masks[1].sum() == 8 and masks[1][3:7, 11:13].all()
    assert abs(masks[2].sum() - np.pi * 6) < 5

    text = "\n".join(s.problems)
    assert "images/a.png <polyline> number 2: a <polyline> has no area" in text
    assert "<points> number 3: a <points> has no area" in text
    assert "images/b.png <mask> number 1: unreadable <mask> (mask rle counts sum to 7, not width*height = 6)" in text
    assert "'images/gone.png' not found" in text
    assert "1 image(s) have no annotations: images/c.png; skipped" in text
    assert "label(s) ['bus'] are used but not declared" in text


def test_cvat_keeps_unannotated_when_asked(export):
    s = read_annotations(export, keep_unannotated=True)
    assert [img.name for img in s.images if not img.annotated] == ["images/c.png"]


def test_cvat_job_labels_and_bad_files(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    job = XML.replace("<task>", "<job>").replace("</task>", "</job>")
    (tmp_path / "job.xml").write_text(job)
    assert read_annotations(tmp_path / "job.xml").labels[:3] == ["road", "car", "tree"]
    (tmp_path / "video.xml").write_text('<annotations><version>1.1</version><meta/><track id="0" label="car"/></annotations>')
    with pytest.raises(DataError, match="video.xml: a 'CVAT for video' export.*'CVAT for images 1.1'"):
        read_annotations(tmp_path / "video.xml")
    (tmp_path / "voc.xml").write_text("<annotation><filename>a.png</filename></annotation>")
    assert detect_format(tmp_path / "voc.xml") is None
    with pytest.raises(DataError, match="voc.xml: an XML file but not CVAT"):
        read_annotations(tmp_path / "voc.xml")
    (tmp_path / "cut.xml").write_text("<annotations><image ")
    with pytest.raises(DataError, match="cut.xml: not valid XML"):
        read_annotations(tmp_path / "cut.xml")
