#!/bin/sh
# ServerTool get_items_on_sale (seed_parallel_marketing.json): no arguments; prints the items on
# sale as one JSON list of objects of strings.
cat >/dev/null
echo '[{"item_type": "household", "title": "Broom"}, {"item_type": "videogame", "title": "Metroid"}, {"item_type": "movie", "title": "The Lord of the Rings"}]'
