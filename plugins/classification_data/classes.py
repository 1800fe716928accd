"""Class tables of the classification benchmarks (``scenes``, ``instruments``, ``scenes3``).

One definition shared by the dataset plugin (its default ``classes`` and ``label_map``) and
the embedded generators; no imports, so that loading the plugin stays cheap.
"""

from __future__ import annotations

__all__ = ["INSTRUMENT_FAMILIES", "SCENES3_CLASSES", "SCENE_CLASSES", "TAU_SCENE_TO_CLASS"]

#: TUT Acoustic Scenes 2017-like scenes of the embedded ``scenes`` benchmark.
SCENE_CLASSES: tuple[str, ...] = (
    "bus",
    "cafe_restaurant",
    "city_center",
    "forest_path",
    "grocery_store",
    "home",
    "library",
    "metro_station",
    "office",
    "park",
)
#: NSynth-like instrument families of the embedded ``instruments`` benchmark.
INSTRUMENT_FAMILIES: tuple[str, ...] = (
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "vocal",
)
#: TAU Urban Acoustic Scenes 2020: fine scene -> coarse class of DCASE 2020 task 1B.
TAU_SCENE_TO_CLASS: dict[str, str] = {
    "airport": "indoor",
    "shopping_mall": "indoor",
    "metro_station": "indoor",
    "street_pedestrian": "outdoor",
    "public_square": "outdoor",
    "street_traffic": "outdoor",
    "park": "outdoor",
    "tram": "transportation",
    "bus": "transportation",
    "metro": "transportation",
}
#: The coarse classes of ``scenes3`` in output order.
SCENES3_CLASSES: tuple[str, ...] = ("indoor", "outdoor", "transportation")
