"""Knowledge-intensive and alternative-intent query templates of the demo shop (hand-written).

A knowledge query states a need, not a product ("what do I need to hang a heavy mirror"); the
template records the knowledge that turns the need into product types and attribute constraints
(picture-hanging kits or wall anchors, heavy-duty). Labels are computed from those constraints, so a
system that lacks the knowledge ranks the wrong products and the evaluation shows it.
"""

from __future__ import annotations

from shopsearch.data.demo.vocabulary import KnowledgeTemplate, make_knowledge

_AGES = {str(a): "age_range=ages 3-5" for a in (3, 4, 5)}
_AGES.update({str(a): "age_range=ages 6-8" for a in (6, 7, 8)})
_AGES.update({str(a): "age_range=ages 9-12" for a in (9, 10, 11, 12)})
_HEAVY = "load_rating=heavy-duty"
_ANY_MOUNT = "up to 43-inch|up to 55-inch|up to 65-inch|up to 85-inch"

KNOWLEDGE: tuple[KnowledgeTemplate, ...] = (
    make_knowledge(
        "hang-heavy",
        "what do I need to hang a heavy {thing}|how to hang a heavy {thing} on the wall|"
        "hanging a heavy {thing} on plasterboard|best way to hang a big heavy {thing}",
        "picture_hanging_kit wall_anchor", _HEAVY,
        {"thing": {"mirror": "", "picture frame": "", "canvas": "", "clock": ""}},
    ),
    make_knowledge(
        "hang-no-drill",
        "how to hang a {thing} without drilling|hang a {thing} without damaging the wall|"
        "renter friendly way to hang a {thing}",
        "picture_hanging_kit", "install=adhesive strips",
        {"thing": {"picture": "", "poster": "", "small mirror": "", "photo frame": ""}},
    ),
    make_knowledge(
        "gift-toy",
        "gift for a {age} year old who loves {theme}|present for a {age} year old {theme} fan|"
        "what to get a {age} year old who is into {theme}|{theme} gift for {age} year old|"
        "birthday present for {age} year old obsessed with {theme}",
        "toy_figure_set building_set plush_toy jigsaw_puzzle", "",
        {"age": _AGES,
         "theme": {"dinosaurs": "theme=dinosaur", "space": "theme=space", "unicorns": "theme=unicorn",
                   "sea creatures": "theme=ocean animals", "farm animals": "theme=farm animals",
                   "knights and castles": "theme=knights & castles"}},
    ),
    make_knowledge(
        "moisturizer-season",
        "{season} moisturizer for {skin} skin|best face cream for {skin} skin in {season}|"
        "{season} moisturiser for {skin} skin|what moisturizer should I use for {skin} skin in {season}",
        "moisturizer", "",
        {"season": {"summer": "texture=gel|lotion", "winter": "texture=cream|balm"},
         "skin": {"oily": "skin_type=oily", "dry": "skin_type=dry", "sensitive": "skin_type=sensitive",
                  "combination": "skin_type=combination"}},
    ),
    make_knowledge(
        "keep-hot",
        "something to keep my {drink} hot on my commute|mug that keeps {drink} hot for hours|"
        "how to keep {drink} hot all day at work|cup that keeps {drink} warm all morning",
        "travel_mug", "insulation=double-wall vacuum insulated",
        {"drink": {"coffee": "", "tea": "", "hot chocolate": ""}},
    ),
    make_knowledge(
        "running-surface",
        "shoes for running on {surface}|what shoes for running on {surface}|best runners for {surface}",
        "running_shoes", "",
        {"surface": {"muddy trails": "terrain=trail", "mountain paths": "terrain=trail",
                     "the pavement": "terrain=road", "city streets": "terrain=road",
                     "an athletics track": "terrain=track"}},
    ),
    make_knowledge(
        "winter-wear",
        "what to wear for a {activity}|jacket for a {activity}|warm coat for a {activity}",
        "winter_jacket", "waterproofing=waterproof; insulation=down|synthetic fill",
        {"activity": {"winter hike": "", "snowy dog walk": "", "ski trip": "", "freezing rainy commute": ""}},
    ),
    make_knowledge(
        "printer-need",
        "printer for {need} at home|best printer for {need}|what printer should I buy for {need}",
        "printer", "",
        {"need": {"printing photos": "function=photo; printer_type=inkjet",
                  "printing lots of documents": "printer_type=laser",
                  "scanning homework": "function=all-in-one"}},
    ),
    make_knowledge(
        "tent-group",
        "tent for a {group}|tent big enough for a {group}|camping tent for a {group}",
        "tent", "",
        {"group": {"family of four": "capacity=4-person|6-person", "family of five": "capacity=6-person",
                   "couple": "capacity=2-person|3-person", "solo backpacking trip": "capacity=1-person|2-person"}},
    ),
    make_knowledge(
        "tent-winter",
        "tent for winter camping|tent for camping in the snow|tent that can handle snow and strong wind",
        "tent", "season=4-season",
    ),
    make_knowledge(
        "mattress-need",
        "mattress for {need}|best mattress for {need}|what mattress is good for {need}",
        "mattress", "",
        {"need": {"back pain": "firmness=medium-firm|firm", "a bad back": "firmness=medium-firm|firm",
                  "side sleepers": "firmness=soft|medium",
                  "someone who sleeps hot": "material=latex|hybrid|pocket sprung"}},
    ),
    make_knowledge(
        "induction",
        "pans that work on an induction hob|cookware for an induction cooktop|what pans can I use on induction|"
        "induction friendly pots and pans",
        "frying_pan cookware_set", "hob=induction",
    ),
    make_knowledge(
        "drill-masonry",
        "drill for {wall}|what drill do I need for {wall}|drill that can go through {wall}",
        "cordless_drill", "drill_type=hammer drill|combi drill",
        {"wall": {"concrete walls": "", "brick": "", "masonry": "", "stone walls": ""}},
    ),
    make_knowledge(
        "earbuds-sport",
        "earbuds that won't fall out when {activity}|headphones for {activity}|best earphones for {activity}",
        "earbuds", "",
        {"activity": {"running": "fit=ear hooks|wingtips", "the gym": "feature=sweatproof",
                      "swimming laps": "water_resistance=IPX7"}},
    ),
    make_knowledge(
        "teething",
        "toy for a teething {age} month old|something for my {age} month old's sore gums|"
        "what helps a {age} month old with teething pain",
        "teething_toy", "",
        {"age": {"4": "age_range=ages 0-6 months", "5": "age_range=ages 0-6 months",
                 "9": "age_range=ages 3-12 months", "10": "age_range=ages 3-12 months"}},
    ),
    make_knowledge(
        "paint-room",
        "paint for a {room}|paint that won't peel in a {room}|best paint for {room} walls",
        "interior_paint", "",
        {"room": {"bathroom": "room=kitchen & bathroom", "steamy kitchen": "room=kitchen & bathroom",
                  "bedroom": "room=living room & bedroom", "kids playroom": "room=living room & bedroom"}},
    ),
    make_knowledge(
        "sun-need",
        "sunscreen for {need}|suncream for {need}|sun protection for {need}",
        "sunscreen", "",
        {"need": {"swimming": "water_resistance=water resistant", "a beach day with kids": "spf=SPF 50|SPF 50+",
                  "a ski holiday": "spf=SPF 50|SPF 50+", "pale skin that burns easily": "spf=SPF 50|SPF 50+"}},
    ),
    make_knowledge(
        "tv-mount",
        "what do I need to mount a {size} tv on the wall|how to hang a {size} tv|wall mount for a {size} telly",
        "tv_wall_mount", "",
        {"size": {"43 inch": "max_screen_size=" + _ANY_MOUNT,
                  "55 inch": "max_screen_size=up to 55-inch|up to 65-inch|up to 85-inch",
                  "65 inch": "max_screen_size=up to 65-inch|up to 85-inch",
                  "75 inch": "max_screen_size=up to 85-inch"}},
    ),
    make_knowledge(
        "mat-need",
        "yoga mat for {need}|exercise mat for {need}|which yoga mat for {need}",
        "yoga_mat", "",
        {"need": {"bad knees": "thickness=8mm|10mm", "sore wrists": "thickness=8mm|10mm",
                  "travelling": "feature=foldable travel", "an eco friendly home": "material=natural rubber|cork"}},
    ),
    make_knowledge(
        "shampoo-need",
        "shampoo for {need}|what shampoo for {need}|best shampoo for {need}",
        "shampoo", "",
        {"need": {"greasy hair": "hair_type=oily", "frizzy hair": "hair_type=curly|dry",
                  "dyed hair": "hair_type=colour-treated", "hair that gets oily fast": "hair_type=oily"}},
    ),
    make_knowledge(
        "sleeping-bag-trip",
        "sleeping bag for {trip}|what sleeping bag for {trip}|warm enough sleeping bag for {trip}",
        "sleeping_bag", "",
        {"trip": {"winter camping": "season_rating=winter", "camping in the snow": "season_rating=winter",
                  "summer festivals": "season_rating=summer", "cold spring nights": "season_rating=3-season|winter"}},
    ),
    make_knowledge(
        "laptop-use",
        "laptop for {use}|best laptop for {use}|what laptop do I need for {use}",
        "laptop", "",
        {"use": {"video editing": "ram=16GB|32GB; processor=Core i7|Ryzen 7",
                 "gaming": "ram=16GB|32GB; processor=Core i7|Ryzen 7",
                 "taking notes in lectures": "screen_size=13-inch|14-inch"}},
    ),
    make_knowledge(
        "kids-helmet",
        "bike helmet for my {age} year old|helmet for a {age} year old learning to ride|"
        "cycle helmet for {age} year old",
        "bike_helmet", "helmet_type=kids",
        {"age": {"4": "size=S", "5": "size=S", "6": "size=S|M", "7": "size=S|M", "8": "size=M"}},
    ),
    make_knowledge(
        "pet-vacuum",
        "vacuum for {pet} hair|best hoover for a house with {pet}s|vacuum that picks up {pet} hair from carpet",
        "vacuum_cleaner", "feature=pet hair tool",
        {"pet": {"dog": "", "cat": ""}},
    ),
    make_knowledge(
        "cold-bottle",
        "bottle that keeps water cold all day|water bottle that stays cold in hot weather|"
        "drinks bottle that keeps drinks cold for hours",
        "water_bottle", "material=stainless steel",
    ),
)  # fmt: skip

# "Cheaper alternative to <brand> vacuum": same type, another brand, lower price than the named
# brand's typical product. {t} is the product noun (or a colloquial synonym).
ALTERNATIVE_PHRASINGS: tuple[str, ...] = (
    "cheaper alternative to {brand} {t}",
    "{t} like {brand} but cheaper",
    "affordable alternative to a {brand} {t}",
    "{brand} {t} dupe",
    "budget {t} similar to {brand}",
    "cheaper {t} than {brand}",
)
