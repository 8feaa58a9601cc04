"""The live surface: committed changes (``changes``), the fan-out to every open board
(``hub``), what boards are sent (``render``) and the ``/ws`` websocket (``views``)."""
