"""What mmal supports among mmdet's detectors: the family x method matrix (:mod:`.matrix`) and the
sweep of every config of the installed mmdet's zoo (:mod:`.sweep`); ``mmal sweep`` runs both."""
