FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -c requirements.lock -e .
# Production refuses placeholder secrets. Without SECRET_KEY, the key generated on first start
# lives in CHAINLENS_DATA_DIR: a volume, so sessions survive a rebuilt container.
ENV ENVIRONMENT=production
ENV CHAINLENS_DATA_DIR=/var/lib/chainlens
VOLUME /var/lib/chainlens
EXPOSE 8000
CMD ["chainlens", "serve", "--host", "0.0.0.0"]
