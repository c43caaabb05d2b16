"""Texts shared by the shopsearch.models tests (a uniquely named module: tests/ has no packages)."""

QUERIES = ["cordless drill", "white kitchen faucet", "2x4 lumber 8 ft", "paint"]
TITLES = [
    "Bosch 18V Cordless Drill Driver Kit with 2 Batteries",
    "Moen Arbor One-Handle Pull-Down Kitchen Faucet in White",
    "2 in. x 4 in. x 8 ft. Premium Kiln-Dried Whitewood Stud",
    "Behr Premium Plus Ultra 1 gal. Deep Base Flat Exterior Paint and Primer",
    "outdoor led wall light " * 80,  # longer than max_seq_length (64 in the tests): truncation must agree
]
PREFIX = "query: "
