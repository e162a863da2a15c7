"""reenact-fx's own plugins, one package per component; registered through the ``reenact_fx``
entry-point group exactly like a third party's."""
