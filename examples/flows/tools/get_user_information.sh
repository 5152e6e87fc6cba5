#!/bin/sh
# ServerTool get_user_information (seed_parallel_marketing.json): reads {"username": "..."} on
# stdin; prints the user's information as one JSON object of strings ({} for an unknown user).
. "$(dirname "$0")/username.sh"
case $username in
alice) echo '{"name": "Alice", "email": "alice@email.com", "date_of_birth": "1980/05/01"}' ;;
bob) echo '{"name": "Bob", "email": "bob@email.com", "date_of_birth": "1970/10/01"}' ;;
*) echo '{}' ;;
esac
