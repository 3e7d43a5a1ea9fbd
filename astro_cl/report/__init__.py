"""Reports: functions returning matplotlib figures, and the HTML report."""
