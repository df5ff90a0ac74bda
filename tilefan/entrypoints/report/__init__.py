"""What the doors show a person: live progress, the plan table, report files, the
Gantt chart and field maps."""
