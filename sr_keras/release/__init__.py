"""The shipped models' recipes and cards, the sources sr-export takes, the demo."""
