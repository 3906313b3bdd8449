from outcomes import create_app

app = create_app()
