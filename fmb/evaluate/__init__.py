"""The accuracy step: scoring model responses against the dataset's ground truth."""
