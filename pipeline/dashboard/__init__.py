"""``moodwire dashboard``: a local web page that shows the live stream (docs/dashboard.md).

Three pieces, one job each: ``state`` folds messages into the JSON view the page reads (pure),
``feed`` keeps that state current from the public endpoint (a subscriber thread), ``server``
serves the page, the JSON and a Server-Sent Events stream (standard library only); ``access``
decides who may reach it. The page itself is ``static/`` (plain JS, SVG and canvas).
"""
