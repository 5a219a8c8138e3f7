"""The ``/ws`` endpoint: one session per socket (:mod:`.session`), the items its
bounded send queue holds (:mod:`.items`), frames encoded once for many sockets
(:mod:`.frames`) and whole writes one at a time (:mod:`.send_lock`)."""
