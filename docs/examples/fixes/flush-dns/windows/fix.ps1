# Flush the Windows DNS client cache.
ipconfig /flushdns
exit $LASTEXITCODE
