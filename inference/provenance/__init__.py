"""The provenance path, in the order a record travels:

  stamp (stamp.py: inference id, salted commitments, per call, no Django)
    → recorder (recorder.py: Sync, List or Buffered)
    → spool (spool.py: fsynced segments on local disk; spooling_recorder.py: the
      buffer → spool → sink threads, also used by the API client)
    → shipper (shipper.py: child processes that hand spooled frames to the writer)
    → writer (writer.py: Prediction rows, salts and ledger entries in one transaction)

External inference servers use client.py (stamp + spool + HTTP, no Django), and the
API hands their records to ingest.py, which validates them and calls the same writer.
Each module imports only those before it in this list.
"""
