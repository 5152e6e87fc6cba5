#!/bin/sh
# ServerTool get_user_last_purchases (seed_parallel_marketing.json): reads {"username": "..."} on
# stdin; prints the user's purchases as one JSON list of objects of strings ([] for an unknown user).
. "$(dirname "$0")/username.sh"
case $username in
alice) echo '[{"item_type": "videogame", "title": "Arkanoid", "date": "2000/10/10"}, {"item_type": "videogame", "title": "Pacman", "date": "2002/09/09"}]' ;;
bob) echo '[{"item_type": "movie", "title": "Batman begins", "date": "2015/10/10"}, {"item_type": "movie", "title": "The Dark Knight", "date": "2020/08/08"}]' ;;
*) echo '[]' ;;
esac
