/// Jobs: durable job records, blobs, the bounded queue and workers.
