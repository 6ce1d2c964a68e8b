"""The four stages of the pipeline: intake → verify → route → notify."""
