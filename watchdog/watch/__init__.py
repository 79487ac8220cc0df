"""The watch pipeline: plan listings, observe Polaris, keep samples, judge, run the loop."""
