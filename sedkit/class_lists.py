"""Class lists of standard data sets. No imports: the benchmark generators' worker processes
read them without loading torch."""

#: The ten DESED classes in DESED's (alphabetical) order.
DESED_CLASSES: tuple[str, ...] = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)
