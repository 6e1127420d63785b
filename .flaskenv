# Read by `flask` (through python-dotenv) so that plain `flask run` finds the app.
FLASK_APP=webchat
