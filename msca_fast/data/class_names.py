"""Class names of the supported data sets, indexed by the class ids the loaders return.

COCO-Stuff: from ``labels.txt`` / ``labels.md`` of https://github.com/nightrome/cocostuff.
That list is 1-based (0 = unlabeled); the stuffthingmaps PNGs are 0-based (their README:
"thing+stuff labels cover indices 0-181 and 255 indicates the 'unlabeled' or void class"),
so PNG value v is entry v+1 of labels.txt. Ids 0..90 are things (11 of them, e.g. 'street
sign', 'hat', are never annotated), 91..181 are stuff, 182 is our don't-care class.

ADE20K (SceneParsing, 150 classes): first synonym of each row of ``objectInfo150.txt`` of
https://github.com/CSAILVision/sceneparsing; PNG value v (1..150) is id v-1, 150 is don't-care.
"""

from __future__ import annotations

# The value COCO-Stuff's label maps store for unlabeled pixels; the loader makes it the last
# class (182), and synthesis from COCO-Stuff label files does the same.
COCO_STUFF_DONTCARE = 255

COCO_STUFF_THING_IDS = range(0, 91)

COCO_STUFF_CLASS_NAMES: tuple[str, ...] = (
    # things, 0..90
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    "hat", "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror",
    "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush",
    # stuff, 91..181
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence",
    "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog",
    "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house",
    "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net",
    "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield",
    "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea",
    "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
    # PNG value COCO_STUFF_DONTCARE, mapped to 182
    "unlabeled",
)

# Stuff classes that (almost) only occur inside buildings, for the outdoor-scene filter.
# wall-* and floor-* are included although some walls and floors are outside: in COCO a large
# share of wall/floor pixels is a strong indoor cue; raise the indoor threshold to be laxer.
COCO_STUFF_INDOOR_STUFF_NAMES: tuple[str, ...] = (
    "ceiling-other", "ceiling-tile",
    "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood",
    "window-blind", "window-other",
    "cabinet", "carpet", "counter", "cupboard", "curtain", "desk-stuff", "furniture-other",
    "mirror-stuff", "rug", "mat", "shelf", "pillow", "blanket", "towel",
)  # fmt: skip
COCO_STUFF_INDOOR_STUFF_IDS: tuple[int, ...] = tuple(
    sorted(COCO_STUFF_CLASS_NAMES.index(name) for name in COCO_STUFF_INDOOR_STUFF_NAMES)
)

ADE20K_CLASS_NAMES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television", "airplane", "dirt track", "apparel",
    "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage",
    "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike",
    "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
    # PNG value 0 ("other"), mapped to 150
    "other",
)


def generic_class_names(count: int) -> list[str]:
    """['class_0', ..., f'class_{count-1}'] for data sets whose class names are unknown."""
    return [f"class_{i}" for i in range(count)]
