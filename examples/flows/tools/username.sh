# Sourced by the user tools: sets $username from the JSON arguments on stdin,
# {"username": "..."} (a plain string: no escaped quotes), or to "" when it is missing.
args=$(cat)
username=
case $args in
*'"username"'*)
    rest=${args#*'"username"'}
    rest=${rest#*:}
    rest=${rest#*'"'}
    username=${rest%%'"'*}
    ;;
esac
