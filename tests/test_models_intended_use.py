"""The intended-use check: the card's statement against each image, in results and the audit."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pydicom
import pytest

from engine.cli import main as cli_main
from engine.core.errors import ModelError
from engine.core.resources import DEMO_STUDY
from engine.explain.session import ExplainRequest, Session
from engine.models.card import read_card
from engine.models.intended_use import IntendedUse, check
from engine.models.loaded import load_model
from engine.studies.image import open_image

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def test_demo_card_states_its_use_and_a_demo_image_matches():
    model = load_model("demo")
    assert model.intended_use.modalities == ("CR", "DX")
    result = model.check_use(open_image(DEMO_STUDY / "phantom_0001.dcm"))
    assert result.status == "match" and result.out_of_distribution is False


def test_ct_against_a_chest_radiograph_model_is_a_mismatch_with_a_badge_line():
    model = load_model("demo")
    result = model.check_use(open_image(TEST_FILES / "CT_small.dcm"))
    assert result.status == "mismatch"
    assert result.message.startswith("model is for CR/DX chest; this is CT")
    assert "modality CT" in result.problems
    assert result.out_of_distribution is True
    assert "\n" not in result.message


def test_checks_each_field():
    use = IntendedUse(modalities=("CR",), body_parts=("CHEST",), photometric=("MONOCHROME2",),
                      min_size=(256, 256))
    mr = open_image(TEST_FILES / "MR_small.dcm")
    got = check(use, mr)
    assert got.status == "mismatch"
    assert any(p.startswith("size 64x64 below 256x256") for p in got.problems)
    assert check(None, mr).status == "unknown"
    assert "unknown" in check(None, mr).message
    assert check(IntendedUse(modalities=("MR",)), mr).status == "match"


def test_malformed_intended_use_names_the_card_and_field(tmp_path):
    card = tmp_path / "card.toml"
    card.write_text(textwrap.dedent("""
        name = "x"
        architecture = "torchvision:resnet18"
        weights = "w.pt"
        [intended_use]
        min_size = "big"
    """))
    with pytest.raises(ModelError, match="min_size") as err:
        read_card(card)
    assert str(card) in err.value.one_line()


def test_explain_result_and_audit_rows_carry_the_check(tmp_path):
    model = load_model("demo")
    ct = open_image(TEST_FILES / "CT_small.dcm")
    result = Session(device="cpu").explain(ExplainRequest(ct, model, ["gradcam"]))
    assert result.intended_use["status"] == "mismatch"
    assert any(w.startswith("model is for CR/DX chest") for w in result.warnings)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,label\n{DEMO_STUDY / 'phantom_0001.dcm'},normal\n"
                        f"{TEST_FILES / 'CT_small.dcm'},normal\n")
    assert cli_main(["audit", str(manifest), "--model", "demo", "--out", str(tmp_path / "a"),
                     "--no-pdf"]) == 0
    with (tmp_path / "a" / "audit.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["intended_use"] == "match"
    assert rows[1]["intended_use"].startswith("model is for CR/DX chest; this is CT")
