"""The committed simulator reference must match what the model definitions generate."""

from simulators.docs import DOC_PATH, render_reference, splice


def test_committed_reference_is_current():
    committed = DOC_PATH.read_text(encoding="utf-8")
    assert splice(committed, render_reference()) == committed, (
        "docs/simulator.md is stale: run `batchwire sim docs --write`")


def test_reference_lists_every_signal_of_every_kind():
    from simulators.docs import reference_catalog

    text = render_reference()
    for sig in reference_catalog():
        assert f"`{sig.node_id}`" in text if sig.protocol == "opcua" else f"`{sig.name}`" in text
