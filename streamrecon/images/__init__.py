"""Reading images safely: header sizes checked before decoding (``header``), decoding to RGB
(``decode``)."""
