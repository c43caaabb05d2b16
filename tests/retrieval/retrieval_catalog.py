"""The hand-written catalogue of the retrieval tests and helpers over it (plain module, not a conftest:
``from conftest import`` resolves to whichever conftest was imported last)."""

from __future__ import annotations

import pandas as pd

from shopsearch.data.schema import Catalog

# (title, brand, color, category, vertical)
PRODUCTS = [
    (
        "Bosch 18V Cordless Drill Driver Kit with 2 Batteries",
        "Bosch",
        "blue",
        "Tools > Power Tools > Drills",
        "tools",
    ),
    (
        "DeWalt 20V MAX 7-1/4 in. Cordless Circular Saw",
        "DeWalt",
        "yellow",
        "Tools > Power Tools > Saws",
        "tools",
    ),
    ("Makita 18V LXT Brushless Impact Driver", "Makita", "teal", "Tools > Power Tools > Drivers", "tools"),
    ("Husky 26 in. 5-Drawer Rolling Tool Chest", "Husky", "black", "Tools > Tool Storage", "tools"),
    ("Stanley 25 ft. FatMax Tape Measure", "Stanley", "yellow", "Tools > Hand Tools > Measuring", "tools"),
    (
        "Estwing 16 oz. Claw Hammer with Leather Grip",
        "Estwing",
        "silver",
        "Tools > Hand Tools > Hammers",
        "tools",
    ),
    ("Ryobi 40V Cordless Leaf Blower", "Ryobi", "green", "Outdoors > Lawn Care > Blowers", "garden"),
    (
        "Greenworks 21 in. Electric Lawn Mower",
        "Greenworks",
        "green",
        "Outdoors > Lawn Care > Mowers",
        "garden",
    ),
    (
        "Flexzilla 50 ft. Garden Hose with Brass Fittings",
        "Flexzilla",
        "green",
        "Outdoors > Watering > Hoses",
        "garden",
    ),
    ("Fiskars Bypass Pruning Shears", "Fiskars", "orange", "Outdoors > Garden Tools > Pruners", "garden"),
    ("Miracle-Gro Potting Mix 2 cu. ft.", "Miracle-Gro", None, "Outdoors > Soil", "garden"),
    ("Weber Spirit II 3-Burner Propane Gas Grill", "Weber", "black", "Outdoors > Grills", "garden"),
    (
        "Behr Premium Plus Interior Eggshell Paint, White, 1 Gal.",
        "Behr",
        "white",
        "Paint > Interior Paint",
        "paint",
    ),
    (
        "Rust-Oleum Painter's Touch Spray Paint, Gloss Red",
        "Rust-Oleum",
        "red",
        "Paint > Spray Paint",
        "paint",
    ),
    ("Purdy 2-1/2 in. Angled Sash Paint Brush", "Purdy", None, "Paint > Brushes", "paint"),
    ("Wooster 9 in. Paint Roller Cover, 3-Pack", "Wooster", None, "Paint > Rollers", "paint"),
    ("ScotchBlue Original Multi-Surface Painter's Tape", "3M", "blue", "Paint > Tape", "paint"),
    (
        "Moen Arbor Single-Handle Pull-Down Kitchen Faucet, Chrome",
        "Moen",
        "chrome",
        "Plumbing > Kitchen Faucets",
        "bath",
    ),
    ("Kohler Cimarron Elongated Two-Piece Toilet, White", "Kohler", "white", "Plumbing > Toilets", "bath"),
    (
        "Delta Shower Head with Handheld Spray, Brushed Nickel",
        "Delta",
        "nickel",
        "Plumbing > Shower Heads",
        "bath",
    ),
    ("Glacier Bay 30 in. Bathroom Vanity with Sink", "Glacier Bay", "white", "Bath > Vanities", "bath"),
    ("Rheem 50 Gal. Electric Water Heater", "Rheem", None, "Plumbing > Water Heaters", "bath"),
    (
        "GE 60-Watt Equivalent A19 LED Light Bulbs, Soft White, 4-Pack",
        "GE",
        None,
        "Lighting > Light Bulbs",
        "lighting",
    ),
    (
        "Hampton Bay 52 in. Indoor Ceiling Fan with Light Kit",
        "Hampton Bay",
        "bronze",
        "Lighting > Ceiling Fans",
        "lighting",
    ),
    ("Ring Video Doorbell Wired", "Ring", "black", "Electrical > Doorbells", "electrical"),
    ("Leviton Decora 15 Amp Light Switch, White", "Leviton", "white", "Electrical > Switches", "electrical"),
    (
        "Southwire 100 ft. 12/2 Romex Electrical Wire",
        "Southwire",
        "yellow",
        "Electrical > Wire",
        "electrical",
    ),
    (
        "Google Nest Learning Thermostat, Stainless Steel",
        "Google",
        "silver",
        "Heating & Cooling > Thermostats",
        "hvac",
    ),
    ("LG 8,000 BTU Window Air Conditioner", "LG", "white", "Heating & Cooling > Air Conditioners", "hvac"),
    (
        "Honeywell HEPA Air Purifier for Large Rooms",
        "Honeywell",
        "black",
        "Heating & Cooling > Air Quality",
        "hvac",
    ),
    (
        "Samsung 28 cu. ft. French Door Refrigerator, Stainless Steel",
        "Samsung",
        "silver",
        "Appliances > Refrigerators",
        "appliances",
    ),
    ("Whirlpool Top Load Washing Machine, White", "Whirlpool", "white", "Appliances > Washers", "appliances"),
    (
        "Frigidaire 30 in. Electric Range with Self-Cleaning Oven",
        "Frigidaire",
        "silver",
        "Appliances > Ranges",
        "appliances",
    ),
    ("Bissell Upright Bagless Vacuum Cleaner", "Bissell", "purple", "Appliances > Vacuums", "appliances"),
    ("Ashley Three-Seat Fabric Sofa, Gray", "Ashley", "gray", "Furniture > Living Room > Sofas", "furniture"),
    ("StyleWell Solid Wood Dining Table for Six", "StyleWell", "brown", "Furniture > Dining", "furniture"),
    (
        "Home Decorators Collection Area Rug 8 ft. x 10 ft.",
        "Home Decorators",
        "beige",
        "Flooring > Rugs",
        "flooring",
    ),
    ("LifeProof Luxury Vinyl Plank Flooring, Oak", "LifeProof", "brown", "Flooring > Vinyl", "flooring"),
    ("Werner 6 ft. Fiberglass Step Ladder", "Werner", "orange", "Tools > Ladders", "tools"),
    ("Gorilla Heavy Duty Construction Adhesive", "Gorilla", None, "Hardware > Adhesives", "hardware"),
    (
        "Schlage Camelot Keypad Entry Door Lock, Satin Nickel",
        "Schlage",
        "nickel",
        "Hardware > Door Locks",
        "hardware",
    ),
    (
        "Everbilt #8 x 1-1/4 in. Wood Screws, 100-Pack",
        "Everbilt",
        None,
        "Hardware > Fasteners > Screws",
        "hardware",
    ),
]


def make_catalog(products: list[tuple] = PRODUCTS, prefix: str = "P") -> Catalog:
    rows = [
        {"product_id": f"{prefix}{i:03d}", "title": t, "brand": b, "color": c, "category": cat, "vertical": v}
        for i, (t, b, c, cat, v) in enumerate(products)
    ]
    return Catalog(pd.DataFrame(rows))


def pid_of(catalog: Catalog, title_start: str) -> str:
    hit = catalog.df[catalog.df["title"].str.startswith(title_start)]
    assert len(hit) == 1, title_start
    return str(hit["product_id"].iloc[0])
