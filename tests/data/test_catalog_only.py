"""A catalogue alone loads (for `index build`), with no queries or judgments."""

from shopsearch.data import detect_format, load_dataset


def test_bare_product_catalogue_loads_without_judgments(tmp_path):
    products = tmp_path / "products.csv"
    products.write_text("product_id,title\n1,Cordless Drill\n2,Claw Hammer\n2,Claw Hammer duplicate\n")
    assert detect_format(products, None) == "homedepot"
    dataset = load_dataset(catalog=products)
    assert len(dataset.catalog) == 2 and len(dataset.queries) == 0 and len(dataset.judgments) == 0
    assert dataset.meta["layout"] == "catalogue-only"
    assert [r.action for r in dataset.report.rows] == ["kept-first"]  # the duplicate is counted, not lost
